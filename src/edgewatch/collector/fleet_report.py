"""Operator views of the fleet: ``edgewatch fleet status`` and ``edgewatch fleet device``."""

from __future__ import annotations

from typing import Any

import msgspec

from edgewatch.collector.fleet import DeviceStateName, counts_as_drifting, device_state_of
from edgewatch.collector.store import DeviceState
from edgewatch.contracts.summary import Summary

DEFAULT_STALE_AFTER_S = 300.0
"""``fleet.stale_after_s``'s default (the CLI passes the configured value)."""


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
            "severity": None if s.drift is None else s.drift.severity,
            "score": None if s.drift is None else s.drift.score, "quality": dict(s.quality),
            "features": _features(s),
        })
    manifest = {} if d.manifest is None else msgspec.to_builtins(d.manifest)
    return {**device_row(d), "manifest": manifest, "windows": windows}
