"""Operator views of the fleet: ``edgewatch fleet status`` and ``edgewatch fleet device``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from edgewatch.collector.store import DeviceState
from edgewatch.contracts.summary import SEVERITY_RANK, Summary

SEVERITY_ORDER = {s: len(SEVERITY_RANK) - 1 - int(r) for s, r in SEVERITY_RANK.items()} | {
    "-": len(SEVERITY_RANK)}
"""Table order of drift verdicts: drift first, devices without a verdict (``-``) last."""


def _age(now: float, t: float | None) -> str:
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


def device_row(d: DeviceState) -> dict[str, Any]:
    """One device as plain data (the --json form of a table row)."""
    drift = None if d.last_summary is None else d.last_summary.drift
    return {
        "device": d.device, "fleet": d.fleet, "online": bool(d.online),
        "last_seen": d.last_seen, "last_window_end": d.last_window_end,
        "drift_severity": "-" if drift is None else drift.severity,
        "drift_score": None if drift is None else drift.score,
        "active_alerts": d.active_alerts, "gaps": d.gaps, "historical": d.historical,
        "model": None if d.manifest is None else d.manifest.model_name,
        "reference_id": None if d.manifest is None else d.manifest.reference_id,
    }


def status_table(devices: list[DeviceState], now: float) -> str:
    rows = sorted((device_row(d) for d in devices),
                  key=lambda r: (SEVERITY_ORDER.get(r["drift_severity"], 3), r["device"]))
    header = (f"{'device':20} {'fleet':12} {'state':8} {'last seen':10} {'drift':8} "
              f"{'score':>6} {'alerts':>6} {'gaps':>5}")
    lines = [header, "-" * len(header)]
    for r in rows:
        score = "-" if r["drift_score"] is None else f"{r['drift_score']:.1f}"
        lines.append(
            f"{r['device'][:20]:20} {str(r['fleet'])[:12]:12} "
            f"{'online' if r['online'] else 'OFFLINE':8} {_age(now, r['last_seen']):10} "
            f"{r['drift_severity']:8} {score:>6} {r['active_alerts']:>6} {r['gaps']:>5}")
    online = sum(r["online"] for r in rows)
    drifting = sum(r["drift_severity"] == "drift" for r in rows)
    lines.append(f"{len(rows)} devices, {online} online, {drifting} drifting")
    return "\n".join(lines)


def _features(s: Summary) -> dict[str, dict[str, Any]]:
    """Effect and status of every judged feature (status ``ok`` unless flagged)."""
    if s.drift is None:
        return {}
    effects, flagged = s.drift.effects, s.drift.flagged
    out = {}
    for name in sorted({*effects, *flagged}):
        f = flagged.get(name)
        out[name] = {"effect": effects.get(name, None if f is None else f.effect),
                     "status": "ok" if f is None else f.status}
    return out


def device_view(d: DeviceState, summaries: list[Summary]) -> dict[str, Any]:
    """One device and its recent windows as plain data (``fleet device --json``)."""
    windows = []
    for s in summaries:
        windows.append({
            "start": s.window.start, "end": s.window.end,
            "seq": s.seq, "historical": s.historical,
            "frames": msgspec.structs.asdict(s.frames),
            "severity": "-" if s.drift is None else s.drift.severity,
            "score": None if s.drift is None else s.drift.score, "quality": dict(s.quality),
            "features": _features(s),
        })
    manifest = {} if d.manifest is None else msgspec.to_builtins(d.manifest)
    return {**device_row(d), "manifest": manifest, "windows": windows}


def device_text(view: dict[str, Any], now: float) -> str:
    lines = [f"device {view['device']} (fleet {view['fleet']}): "
             f"{'online' if view['online'] else 'OFFLINE'}, last seen "
             f"{_age(now, view['last_seen'])}, model {view['model']}, "
             f"reference {view['reference_id']}, {view['active_alerts']} active alerts, "
             f"{view['gaps']} missing messages"]
    windows = view["windows"]
    if not windows:
        return "\n".join([*lines, "no summaries yet"])
    features = sorted({f for w in windows for f in w["features"]})
    lines.append("window start (UTC)   sev      score  seen  " + " ".join(
        f"{f[:10]:>10}" for f in features))
    for w in windows:
        start = dt.datetime.fromtimestamp(w["start"], dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        score = "-" if w["score"] is None else f"{w['score']:.1f}"
        cells = []
        for f in features:
            e = w["features"].get(f, {}).get("effect")
            mark = {"drift": "!", "warning": "?"}.get(w["features"].get(f, {}).get("status"), "")
            cells.append(f"{'-' if e is None else f'{e:.1f}'}{mark}".rjust(10))
        lines.append(f"{start}  {w['severity']:8} {score:>5} {w['frames'].get('seen', 0):>5}  "
                     + " ".join(cells))
    lines.append("effects in reference SDs (label mixes: JS distance); ! drifted, ? warning")
    return "\n".join(lines)
