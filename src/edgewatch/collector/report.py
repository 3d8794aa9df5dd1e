"""Operator views of the fleet: ``edgewatch fleet status`` and ``edgewatch fleet device``."""

from __future__ import annotations

import datetime as dt
from typing import Any

SEVERITY_ORDER = {"drift": 0, "warning": 1, "ok": 2, "-": 3}


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


def device_row(d: Any) -> dict[str, Any]:
    """One device as plain data (the --json form of a table row)."""
    drift = (d.last_summary or {}).get("drift", {})
    return {
        "device": d.device, "fleet": d.fleet, "online": bool(d.online),
        "last_seen": d.last_seen, "last_window_end": d.last_window_end,
        "drift_severity": drift.get("severity", "-"), "drift_score": drift.get("score"),
        "active_alerts": d.active_alerts, "gaps": d.gaps, "historical": d.historical,
        "model": (d.manifest or {}).get("model_name"),
        "reference_id": (d.manifest or {}).get("reference_id"),
    }


def status_table(devices: list[Any], now: float) -> str:
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


def device_view(d: Any, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    windows = []
    for s in summaries:
        drift = s.get("drift", {})
        feats = drift.get("features", {})
        windows.append({
            "start": s["window"]["start"], "end": s["window"]["end"],
            "seq": s.get("seq"), "historical": bool(s.get("historical")),
            "frames": s.get("frames", {}), "severity": drift.get("severity", "-"),
            "score": drift.get("score"), "quality": s.get("quality", {}),
            "features": {k: {"effect": v.get("effect"), "status": v.get("status")}
                         for k, v in sorted(feats.items())},
        })
    return {**device_row(d), "manifest": d.manifest, "windows": windows}


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
