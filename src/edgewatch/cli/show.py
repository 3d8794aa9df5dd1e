"""A terminal table of replay or run output (``edgewatch show``).

Lines are read through the contracts: summary lines as ``SummaryV1`` (the replay line),
alert lines as ``Alert``; lines of any other type are skipped.

The table has one row per window, a header with each column's unit and a legend under it;
then one line per window that is not ``ok`` saying why (drifted features with their effect
sizes, data-quality faults, unusable frames, too little data), then the alerts. It fits the
terminal's width (``shutil.get_terminal_size``): the least important columns are left out
first, and the legend names them.

This module is imported by ``edgewatch show`` on every call: it imports only the contracts
and the standard library (no numpy), so the command starts fast.
"""

from __future__ import annotations

import datetime as dt
import shutil
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from edgewatch.contracts import Alert, Rejected, SummaryV1, codec
from edgewatch.contracts.summary import FeatureDrift
from edgewatch.errors import EdgewatchError

Record = SummaryV1 | Alert
INSUFFICIENT = "insufficient"
"""The drift cell of a window with too few measured frames or samples for a verdict."""
NOT_JUDGED = "-"
"""The drift cell of a window without a drift verdict (no reference)."""
FALLBACK_SIZE = (120, 24)
"""The table's width when the output is not a terminal and COLUMNS is not set."""


class Column(NamedTuple):
    name: str
    unit: str
    width: int
    drop: int
    """Order in which columns are left out when the terminal is too narrow (1 first;
    0: never)."""
    legend: str


COLUMNS = (
    Column("start", "UTC", 8, 0, "start = the window's start, UTC"),
    Column("length", "s", 6, 1, "length = the window's length in seconds"),
    Column("seen", "frames", 6, 7, "seen = frames the source delivered"),
    Column("mon", "frames", 6, 0, "mon = frames measured by the monitor (at most "
           "features.max_fps per second, 2.5 by default: the rest are skipped on purpose)"),
    Column("drop", "frames", 6, 3, "drop = frames not measured because the monitor queue was "
           "full"),
    Column("errors", "frames", 6, 8, "errors = unusable frames (undecodable, inference failed, "
           "NaN or infinite outputs)"),
    Column("det", "/frame", 6, 9, "det = mean detections per measured frame"),
    Column("score", "0-1", 5, 6, "score = mean detection confidence, 0-1"),
    Column("bright", "0-255", 6, 10, "bright = mean luminance, grey levels 0-255"),
    Column("sharp", "grey²", 7, 4, "sharp = variance of the Laplacian, grey levels squared "
           "(low: blurred)"),
    Column("infer", "ms p50", 6, 5, "infer = model inference time per frame, median (p50) ms"),
    Column("monitor", "ms p50", 7, 2, "monitor = monitoring cost per measured frame, median "
           "(p50) ms"),
    Column("quality", "faults", 12, 0, "quality = data-quality faults in the window ('ok': "
           "none; frames per fault below)"),
    Column("drift", "verdict", 12, 0, "drift = the verdict against the reference: ok; "
           "warning (a significant, sizeable shift); drift (confirmed: persistent or very "
           "large); insufficient (too few measured frames or samples to judge); - (not "
           "judged)"),
)
SEPARATOR = "  "
PLAIN_NAMES = {
    "box_area": "box size", "box_aspect": "box shape", "position": "where the boxes are, 3x3 grid",
    "classes": "classes detected", "det_count": "detections per frame",
    "score_mean": "mean detection score", "score_max": "top score",
    "near_threshold": "detections near the threshold", "brightness": "mean luminance",
    "contrast": "luminance spread", "saturation": "colour saturation",
    "cast_red_blue": "red-blue colour cast", "cast_green_magenta": "green-magenta colour cast",
    "sharpness": "focus", "noise": "sensor noise", "dark_fraction": "clipped dark pixels",
    "bright_fraction": "clipped bright pixels", "entropy": "image detail",
    "edge_density": "edges", "greyscale": "greyscale/IR mode", "top1_prob": "top class "
    "probability", "margin": "top-1 minus top-2 probability",
    "prob_entropy": "uncertainty of the class probabilities",
}
"""What the features measure, in words, for the lines under the table (docs/features.md)."""


class _Line(msgspec.Struct):
    """What kind of line this is (every other field is skipped)."""

    type: str = ""


def parse_line(line: bytes) -> Record | None:
    """A replay line decoded into its contract type; None for lines of other types.

    Raises Rejected for a line that does not decode."""
    kind = codec.decode_as(_Line, line, codec.JSON).type
    if kind == "summary":
        summary: SummaryV1 = codec.decode_as(SummaryV1, line, codec.JSON)
        return summary
    if kind == "alert":  # an alert message with "type" in front
        fields = codec.decode_as(dict[str, Any], line, codec.JSON)
        fields.pop("type", None)
        try:
            return msgspec.convert(fields, Alert)
        except msgspec.ValidationError as exc:
            raise Rejected("invalid", str(exc)[:200]) from None
    return None


def read_lines(path: str | Path) -> list[Record]:
    out = []
    try:
        with open(path, "rb") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = parse_line(line)
                except Rejected as exc:
                    raise EdgewatchError(f"{path}:{number}: not a summary or alert line "
                                         f"({exc})") from None
                if record is not None:
                    out.append(record)
    except OSError as exc:
        raise EdgewatchError(f"cannot read {path}: {exc.strerror}") from exc
    return out


# -- cells ------------------------------------------------------------------------------------


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc)


def _mean(s: SummaryV1, feature: str, digits: int = 2) -> str:
    f = s.features.get(feature)
    return f"{f.mean:.{digits}f}" if f is not None and f.count else "-"


def _p50(s: SummaryV1, stage: str, digits: int) -> str:
    entry = s.latency.get(stage)
    return f"{entry.p50:.{digits}f}" if entry is not None and entry.count else "-"


def unusable(s: SummaryV1) -> int:
    """Frames of the window that could not be measured: undecodable, inference failed,
    NaN or infinite outputs."""
    f = s.frames
    return f.decode_errors + f.inference_errors + f.nonfinite_outputs


def verdict(s: SummaryV1) -> str:
    """The drift cell: the severity, ``insufficient`` or ``-`` (not judged)."""
    if s.drift is None:
        return NOT_JUDGED
    return INSUFFICIENT if s.drift.insufficient else s.drift.severity


def quality_cell(s: SummaryV1) -> str:
    """``ok``, or the most frequent fault (``+N``: N more faults, listed below the table)."""
    faults = [name for name, _count in _faults(s)]
    if not faults:
        return "ok"
    return faults[0] + (f"+{len(faults) - 1}" if len(faults) > 1 else "")


def _faults(s: SummaryV1) -> list[tuple[str, int]]:
    return sorted(((k, v) for k, v in s.quality.items() if v > 0), key=lambda kv: -kv[1])


def _cells(s: SummaryV1, date: bool) -> dict[str, str]:
    start = _utc(s.window.start).strftime("%m-%d %H:%M:%S" if date else "%H:%M:%S")
    f = s.frames
    return {
        "start": start, "length": f"{s.window.end - s.window.start:.1f}", "seen": str(f.seen),
        "mon": str(f.monitored), "drop": str(f.dropped), "errors": str(unusable(s)),
        "det": _mean(s, "det_count"), "score": _mean(s, "score_mean"),
        "bright": _mean(s, "brightness"), "sharp": _mean(s, "sharpness", 0),
        "infer": _p50(s, "inference_ms", 1), "monitor": _p50(s, "monitor_ms", 2),
        "quality": quality_cell(s), "drift": verdict(s),
    }


# -- why a window is not ok -------------------------------------------------------------------


def _feature_reason(name: str, f: FeatureDrift) -> str:
    effect = f.effect or 0.0
    named = f"{name} ({PLAIN_NAMES[name]})" if name in PLAIN_NAMES else name
    if f.js is not None:
        what = f"{named} mix changed by Jensen-Shannon distance {effect:.2f}"
    else:
        shift = f.mean_shift or 0.0
        way = "" if abs(shift) < effect / 2 else " up" if shift > 0 else " down"
        what = f"{named} shifted{way} by {effect:.1f} reference SDs"
    if f.drifted:
        return f"{what}: drift, confirmed"
    if f.status == "drift":
        return f"{what}: drift-sized, {f.streak} window(s) in a row, not yet confirmed"
    return f"{what}: {f.status}"


def reasons(s: SummaryV1) -> list[str]:
    """Why a window is not ok, in plain words (empty for an ok window): data-quality faults,
    unusable frames, too little data, drifted features (the worst ``MAX_FEATURES_SAID``)."""
    out = []
    faults = _faults(s)
    if faults:
        out.append("data quality: " + ", ".join(
            f"{name} in {count} of {s.frames.monitored} measured frames"
            for name, count in faults))
    f = s.frames
    if unusable(s):
        out.append(f"{unusable(s)} of {f.seen} frames unusable ({f.decode_errors} undecodable, "
                   f"{f.inference_errors} inference failed, {f.nonfinite_outputs} NaN or "
                   "infinite outputs)")
    d = s.drift
    if d is not None and d.insufficient:
        out += list(d.reasons) or ["too few measured frames or samples for a verdict"]
    elif d is not None and d.severity != "ok":
        out += _drift_reasons(d.features) or list(d.reasons)
    return out


MAX_FEATURES_SAID = 3
"""Drifted features named per window; the others are counted (all are in the JSON line)."""


def _drift_reasons(features: dict[str, FeatureDrift]) -> list[str]:
    flagged = sorted(((n, f) for n, f in features.items() if f.status != "ok"),
                     key=lambda nf: -(nf[1].effect or 0.0))
    out = [_feature_reason(n, f) for n, f in flagged[:MAX_FEATURES_SAID]]
    if len(flagged) > MAX_FEATURES_SAID:
        out.append(f"{len(flagged) - MAX_FEATURES_SAID} more features flagged (in the JSON "
                   "line's drift.features)")
    return out


# -- layout -----------------------------------------------------------------------------------


def fit_columns(width: int, columns: Sequence[Column] = COLUMNS) -> list[Column]:
    """The columns that fit in ``width`` characters, leaving out the droppable ones in
    their ``drop`` order."""
    shown = list(columns)
    for victim in sorted((c for c in columns if c.drop), key=lambda c: c.drop):
        if _table_width(shown) <= width:
            break
        shown.remove(victim)
    return shown


def _table_width(columns: Sequence[Column]) -> int:
    return sum(c.width for c in columns) + len(SEPARATOR) * (len(columns) - 1)


def _join(cells: Iterable[str], columns: Sequence[Column]) -> str:
    """One line of the table; a cell wider than its column is cut (``…``): the lines below
    the table say it in full."""
    return SEPARATOR.join((cell if len(cell) <= c.width else cell[:c.width - 1] + "…")
                          .rjust(c.width) for cell, c in zip(cells, columns)).rstrip()


def _wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, width=max(width, 40), subsequent_indent=indent,
                         break_on_hyphens=False) or [""]


def _title(summaries: Sequence[SummaryV1]) -> str:
    first, last = _utc(summaries[0].window.start), _utc(summaries[-1].window.end)
    refs = sorted({s.reference_id for s in summaries})
    return (f"{len(summaries)} window(s) from {first:%Y-%m-%d %H:%M:%S} to "
            f"{last:%Y-%m-%d %H:%M:%S} UTC, against reference {', '.join(refs)}")


def _legend(shown: Sequence[Column], width: int) -> list[str]:
    lines = []
    for c in shown:
        lines += _wrap(c.legend, width)
    names = {c.name for c in shown}
    hidden = [c.name for c in COLUMNS if c.name not in names]
    if hidden:
        lines += _wrap(f"(left out to fit {width} columns: {', '.join(hidden)}; widen the "
                       "terminal or set COLUMNS)", width)
    return lines


def _why(summaries: Sequence[SummaryV1], date: bool, width: int) -> list[str]:
    lines = []
    for s in summaries:
        why = reasons(s)
        if why:
            start = _utc(s.window.start).strftime("%m-%d %H:%M:%S" if date else "%H:%M:%S")
            lines += _wrap(f"{start} {verdict(s)}: {'; '.join(why)}", width)
    return ["why:", *lines] if lines else ["why: every window is ok"]


def _alert_lines(alerts: Sequence[Alert], width: int) -> list[str]:
    if not alerts:
        return ["alerts: none"]
    out = [f"alerts ({len(alerts)}):"]
    for a in alerts:
        out += _wrap(f"{_utc(a.since):%Y-%m-%d %H:%M:%S} {a.severity} {a.state}: "
                     f"{a.message}", width)
    return out


def format_table(records: Iterable[Record], width: int | None = None) -> str:
    """The windows as a table with units and a legend, why each window that is not ok is
    not, then the alerts; ``width`` defaults to the terminal's."""
    if width is None:
        width = shutil.get_terminal_size(FALLBACK_SIZE).columns
    items = list(records)
    summaries = [r for r in items if isinstance(r, SummaryV1)]
    alerts = [r for r in items if isinstance(r, Alert)]
    if not summaries:
        return "\n".join(["no window summaries in this file", *_alert_lines(alerts, width)])
    days = {_utc(s.window.start).date() for s in summaries}
    date = len(days) > 1
    columns = _with_date(date)
    shown = fit_columns(width, columns)
    lines = [*_wrap(_title(summaries), width), _join((c.name for c in shown), shown),
             _join((c.unit for c in shown), shown)]
    lines += [_join(_select(_cells(s, date), shown), shown) for s in summaries]
    lines += ["", *_legend(shown, width), "", *_why(summaries, date, width), "",
              *_alert_lines(alerts, width)]
    return "\n".join(lines)


def _with_date(date: bool) -> tuple[Column, ...]:
    if not date:
        return COLUMNS
    first = COLUMNS[0]._replace(width=14, unit="UTC, m-d")
    return (first, *COLUMNS[1:])


def _select(cells: dict[str, str], shown: Sequence[Column]) -> list[str]:
    return [cells[c.name] for c in shown]

