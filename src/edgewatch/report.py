"""A terminal table of replay or run output (``edgewatch show``)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgewatch.errors import EdgewatchError

COLUMNS = (
    ("window (UTC)", 19), ("seen", 5), ("mon", 5), ("drop", 5), ("det/frame", 9),
    ("score", 6), ("bright", 6), ("sharp", 7), ("infer p50", 9), ("mon ms", 6), ("drift", 8),
)


def read_lines(path: str | Path) -> list[dict[str, Any]]:
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise EdgewatchError(f"{path}:{number}: not JSON ({exc.msg})") from exc
    except OSError as exc:
        raise EdgewatchError(f"cannot read {path}: {exc.strerror}") from exc
    return out


def _mean(summary: dict[str, Any], feature: str) -> str:
    f = summary.get("features", {}).get(feature, {})
    return f"{f['mean']:.2f}" if f.get("count") else "-"


def _row(s: dict[str, Any]) -> list[str]:
    start = dt.datetime.fromtimestamp(s["window"]["start"], dt.timezone.utc)
    frames = s["frames"]
    lat = s.get("latency", {})
    infer = lat.get("inference_ms", {}).get("p50")
    mon = lat.get("monitor_ms", {}).get("p50")
    drift = s.get("drift", {}).get("severity", "-")
    return [
        start.strftime("%Y-%m-%d %H:%M:%S"), str(frames["seen"]), str(frames["monitored"]),
        str(frames["dropped"]), _mean(s, "det_count"), _mean(s, "score_mean"),
        _mean(s, "brightness"), _mean(s, "sharpness"),
        f"{infer:.1f}" if infer is not None else "-", f"{mon:.2f}" if mon is not None else "-",
        drift,
    ]


def format_table(records: Iterable[dict[str, Any]]) -> str:
    header = "  ".join(name.rjust(width) for name, width in COLUMNS)
    lines = [header]
    alerts = []
    for rec in records:
        if rec.get("type") == "summary":
            cells = _row(rec)
            lines.append("  ".join(c.rjust(w) for c, (_, w) in zip(cells, COLUMNS)))
        elif rec.get("type") == "alert":
            alerts.append(f"alert {rec.get('severity', '?')}: {rec.get('message', '')}")
    return "\n".join(lines + alerts)
