"""A terminal table of replay or run output (``edgewatch show``).

Lines are read through the contracts: summary lines as ``SummaryV1`` (the replay line),
alert lines as ``Alert``; lines of any other type are skipped.

``errors`` counts the frames that were not usable (undecodable, inference failed, NaN or
infinite outputs); ``drift`` is ``n/a`` for a window without a verdict (too few monitored
frames, or no feature with enough samples to vote).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from edgewatch.contracts import Alert, Rejected, SummaryV1, codec
from edgewatch.errors import EdgewatchError

COLUMNS = (
    ("window (UTC)", 19), ("seen", 5), ("mon", 5), ("drop", 5), ("errors", 6), ("det/frame", 9),
    ("score", 6), ("bright", 6), ("sharp", 7), ("infer p50", 9), ("mon ms", 6), ("drift", 8),
)
Record = SummaryV1 | Alert


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


def _mean(summary: SummaryV1, feature: str) -> str:
    f = summary.features.get(feature)
    return f"{f.mean:.2f}" if f is not None and f.count else "-"


def _p50(summary: SummaryV1, stage: str) -> float | None:
    entry = summary.latency.get(stage)
    return entry.p50 if entry is not None else None


def _row(s: SummaryV1) -> list[str]:
    start = dt.datetime.fromtimestamp(s.window.start, dt.timezone.utc)
    frames = s.frames
    infer, mon = _p50(s, "inference_ms"), _p50(s, "monitor_ms")
    if s.drift is None:
        drift = "-"
    elif s.drift.insufficient:
        drift = "n/a"
    else:
        drift = s.drift.severity
    errors = frames.decode_errors + frames.inference_errors + frames.nonfinite_outputs
    return [
        start.strftime("%Y-%m-%d %H:%M:%S"), str(frames.seen), str(frames.monitored),
        str(frames.dropped), str(errors), _mean(s, "det_count"), _mean(s, "score_mean"),
        _mean(s, "brightness"), _mean(s, "sharpness"),
        f"{infer:.1f}" if infer is not None else "-", f"{mon:.2f}" if mon is not None else "-",
        drift,
    ]


def format_table(records: Iterable[Record]) -> str:
    header = "  ".join(name.rjust(width) for name, width in COLUMNS)
    lines = [header]
    alerts = []
    for rec in records:
        if isinstance(rec, SummaryV1):
            cells = _row(rec)
            lines.append("  ".join(c.rjust(w) for c, (_, w) in zip(cells, COLUMNS)))
        else:
            alerts.append(f"alert {rec.severity}: {rec.message}")
    return "\n".join(lines + alerts)
