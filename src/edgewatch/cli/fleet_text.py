"""``edgewatch fleet status`` and ``fleet device`` as text that fits the terminal.

They print the plain data of :mod:`edgewatch.collector.fleet_report` (the ``--json`` forms):
``device_row`` dicts for the status table, a ``device_view`` dict for one device. Nothing is
cut: a column is as wide as its longest cell, and the per-feature table, which has one column
per window, goes on in further blocks below when the windows do not fit the width. The width
is the terminal's (``COLUMNS`` when set; 100 when the output is not a terminal).
"""

from __future__ import annotations

import datetime as dt
import shutil
import textwrap
from collections.abc import Sequence
from typing import Any

DEFAULT_WIDTH = 100
"""The width when the output is not a terminal and COLUMNS is not set."""
SEVERITY_ORDER = {"drift": 0, "warning": 1, "ok": 2}
"""Status table order: drift first; devices without a verdict last."""
MARKS = {"drift": "!", "warning": "?"}
LEGEND = ("effect per feature and window, in reference SDs (label mixes: JS distance); "
          "! drifted, ? warning, - not judged")


def width() -> int:
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def age(now: float, t: float | None) -> str:
    """How long ago ``t`` was, in a readable unit: ``30s ago``, ``10m ago``, ``never``."""
    if t is None:
        return "never"
    s = max(now - t, 0.0)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    if s < 172800:
        return f"{s / 3600:.0f}h ago"
    return f"{s / 86400:.0f}d ago"


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _verdict(severity: str | None) -> str:
    return "-" if severity in (None, "-") else str(severity)


def _number(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]],
          right: Sequence[bool] = ()) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart; ``right[i]``: right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    aligned = list(right) + [False] * (len(header) - len(right))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, aligned)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def blocks(labels: Sequence[str], columns: Sequence[tuple[str, Sequence[str]]],
           columns_width: int, label_header: str = "") -> list[str]:
    """A table of a label column and many narrow columns, in blocks of as many columns as
    fit ``columns_width``; each block repeats the labels, blocks are a blank line apart."""
    label_w = max(len(x) for x in [label_header, *labels])
    out: list[str] = []
    start = 0
    while start < len(columns):
        used, end = label_w, start
        while end < len(columns):
            w = max(len(x) for x in [columns[end][0], *columns[end][1]]) + 2
            if end > start and used + w > columns_width:
                break
            used, end = used + w, end + 1
        part = columns[start:end]
        rows = [[label, *(col[1][i] for col in part)] for i, label in enumerate(labels)]
        if out:
            out.append("")
        out += table([label_header, *(c[0] for c in part)], rows,
                     [False, *([True] * len(part))])
        start = end
    return out


def status_text(rows: list[dict[str, Any]], now: float) -> str:
    """The fleet as a table, drift first; its counts are the metrics' (an offline device's
    last verdict is shown but not counted as drifting)."""
    rows = sorted(rows, key=lambda r: (SEVERITY_ORDER.get(_verdict(r["drift_severity"]), 3),
                                       r["device"]))
    header = ["device", "fleet", "state", "last seen", "drift", "score", "alerts", "gaps"]
    cells = [[r["device"], str(r["fleet"]), "OFFLINE" if r["state"] == "offline" else r["state"],
              age(now, r["last_seen"]), _verdict(r["drift_severity"]),
              _number(r["drift_score"]), str(r["active_alerts"]), str(r["gaps"])]
             for r in rows]
    lines = table(header, cells, [False] * 5 + [True] * 3)
    lines.insert(1, "-" * len(lines[0]))
    by_state = {s: sum(r["state"] == s for r in rows) for s in ("online", "stale", "offline")}
    drifting = sum(bool(r["drifting"]) for r in rows)
    lines.append(f"{len(rows)} devices: {by_state['online']} online, {by_state['stale']} "
                 f"stale, {by_state['offline']} offline; {drifting} drifting (offline "
                 "devices not counted)")
    return "\n".join(lines)


def device_text(view: dict[str, Any], now: float, columns: int | None = None) -> str:
    """One device: what it is, its recent windows, then the effect of every judged feature
    per window (windows numbered as in the first table)."""
    columns = columns or width()
    about = (f"device {view['device']} (fleet {view['fleet']}): "
             f"{'online' if view['online'] else 'OFFLINE'}, last seen "
             f"{age(now, view['last_seen'])}, model {view['model'] or '-'}, reference "
             f"{view['reference_id'] or '-'}, {view['active_alerts']} active alerts, "
             f"{view['gaps']} missing messages")
    lines = textwrap.wrap(about, columns, subsequent_indent="  ")
    windows = view["windows"]
    if not windows:
        return "\n".join([*lines, "no summaries yet"])
    lines.append("")
    lines += table(["#", "window start (UTC)", "verdict", "score", "seen", "monitored"],
                   [[str(i), _utc(w["start"]), _verdict(w["severity"]), _number(w["score"]),
                     str(w["frames"].get("seen", 0)), str(w["frames"].get("monitored", 0))]
                    for i, w in enumerate(windows, 1)],
                   [True, False, False, True, True, True])
    features = sorted({f for w in windows for f in w["features"]})
    if not features:
        return "\n".join([*lines, "", "no feature was judged in these windows"])
    per_window = [(f"#{i}", [_effect(w["features"].get(f)) for f in features])
                  for i, w in enumerate(windows, 1)]
    lines += ["", *textwrap.wrap(LEGEND, columns), ""]
    lines += blocks(features, per_window, columns, "feature")
    return "\n".join(lines)


def _effect(feature: dict[str, Any] | None) -> str:
    """``1.2`` and a mark (``!`` drifted, ``?`` warning, a space for neither, so that the
    decimal points line up)."""
    if feature is None or feature.get("effect") is None:
        return "- "
    return f"{feature['effect']:.1f}{MARKS.get(feature.get('status', ''), ' ')}"
