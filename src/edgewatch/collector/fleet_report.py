"""Operator views of the fleet: ``edgewatch fleet status`` and ``edgewatch fleet device``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from edgewatch.collector.fleet import DeviceStateName, counts_as_drifting, device_state_of
from edgewatch.collector.store import DeviceState
from edgewatch.contracts.summary import SEVERITY_RANK, Summary

SEVERITY_ORDER = {s: len(SEVERITY_RANK) - 1 - int(r) for s, r in SEVERITY_RANK.items()} | {
    "-": len(SEVERITY_RANK)}
"""Table order of drift verdicts: drift first, devices without a verdict (``-``) last."""
DEFAULT_STALE_AFTER_S = 300.0
"""``fleet.stale_after_s``'s default (the CLI passes the configured value)."""


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


def device_row(d: DeviceState, now: float | None = None,
               stale_after_s: float = DEFAULT_STALE_AFTER_S) -> dict[str, Any]:
    """One device as plain data (the --json form of a table row). ``state`` is ``online``,
    ``stale`` or ``offline``, as ``edgewatch_fleet_devices`` says (without ``now``: online
    or offline only)."""
    drift = None if d.last_summary is None else d.last_summary.drift
    severity = None if drift is None else drift.severity
    state: DeviceStateName = (
        device_state_of(bool(d.online), d.last_window_end, d.status_time, now, stale_after_s)
        if now is not None else "online" if d.online else "offline")
    return {
        "device": d.device, "fleet": d.fleet, "online": bool(d.online), "state": state,
        "last_seen": d.last_seen, "last_window_end": d.last_window_end,
        "drift_severity": severity,
        "drift_score": None if drift is None else drift.score,
        "drifting": counts_as_drifting(state, severity),
        "active_alerts": d.active_alerts, "gaps": d.gaps, "historical": d.historical,
        "model": None if d.manifest is None else d.manifest.model_name,
        "reference_id": None if d.manifest is None else d.manifest.reference_id,
    }


def status_table(devices: list[DeviceState], now: float,
                 stale_after_s: float = DEFAULT_STALE_AFTER_S) -> str:
    """The fleet as a table; its counts are the metrics' (``edgewatch_fleet_devices``,
    ``edgewatch_fleet_drifting_devices``): an offline device's last verdict is shown but
    not counted as drifting."""
    rows = sorted((device_row(d, now, stale_after_s) for d in devices),
                  key=lambda r: (SEVERITY_ORDER.get(r["drift_severity"] or "-", 3),
                                 r["device"]))
    header = (f"{'device':20} {'fleet':12} {'state':8} {'last seen':10} {'drift':8} "
              f"{'score':>6} {'alerts':>6} {'gaps':>5}")
    lines = [header, "-" * len(header)]
    for r in rows:
        score = "-" if r["drift_score"] is None else f"{r['drift_score']:.1f}"
        state = "OFFLINE" if r["state"] == "offline" else r["state"]
        lines.append(
            f"{r['device'][:20]:20} {str(r['fleet'])[:12]:12} "
            f"{state:8} {_age(now, r['last_seen']):10} "
            f"{r['drift_severity'] or '-':8} {score:>6} {r['active_alerts']:>6} {r['gaps']:>5}")
    by_state = {s: sum(r["state"] == s for r in rows) for s in ("online", "stale", "offline")}
    drifting = sum(r["drifting"] for r in rows)
    lines.append(f"{len(rows)} devices: {by_state['online']} online, {by_state['stale']} "
                 f"stale, {by_state['offline']} offline; {drifting} drifting (offline "
                 "devices not counted)")
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
