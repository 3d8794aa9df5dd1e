"""What alert rules can watch: values read from a window summary, by metric name.

Each metric yields ``{subject: value}``; most have one subject (""), some one per feature,
fault or sensor. A metric missing from a summary yields nothing (the rule waits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgewatch.contracts.vocabulary import QUALITY_FAULTS, SEVERITY_RANK

if TYPE_CHECKING:
    from edgewatch.config.agent import RuleConfig

Summary = dict[str, Any]
Values = dict[str, float]


def _one(value: Any) -> Values:
    return {"": float(value)} if isinstance(value, (int, float)) else {}


def _drift_severity(s: Summary) -> Values:
    drift = s.get("drift") or {}
    if drift.get("insufficient"):
        return {}
    return _one(SEVERITY_RANK.get(drift.get("severity", "")))


def _feature_effects(s: Summary) -> Values:
    feats = (s.get("drift") or {}).get("features") or {}
    return {name: float(f["effect"]) for name, f in feats.items()
            if isinstance(f.get("effect"), (int, float))}


def _quality(s: Summary) -> Values:
    monitored = (s.get("frames") or {}).get("monitored") or 0
    seen = (s.get("frames") or {}).get("seen") or 0
    counts = s.get("quality") or {}
    if not seen:
        return {}
    return {f: counts.get(f, 0) / max(monitored, 1) for f in QUALITY_FAULTS}


def _fps(s: Summary) -> Values:
    w = s.get("window") or {}
    length = float(w.get("end", 0.0)) - float(w.get("start", 0.0))
    return _one((s.get("frames") or {}).get("seen", 0) / length) if length > 0 else {}


def _resource(key: str) -> Callable[[Summary], Values]:
    return lambda s: _one((s.get("resources") or {}).get(key))


def _temperatures(s: Summary) -> Values:
    temps = (s.get("resources") or {}).get("temperatures_c") or {}
    return {k: float(v) for k, v in temps.items() if isinstance(v, (int, float))}


METRICS: dict[str, tuple[str, Callable[[Summary], Values]]] = {
    "drift.severity": ("overall drift verdict: 0 ok, 1 warning, 2 drift", _drift_severity),
    "drift.score": ("largest significant effect (reference SDs)",
                    lambda s: _one((s.get("drift") or {}).get("score"))),
    "drift.feature": ("drift effect of each feature (reference SDs; JS for label mixes)",
                      _feature_effects),
    "anomaly.rate": ("share of anomalous frames",
                     lambda s: _one((s.get("anomaly") or {}).get("rate"))),
    "quality": ("share of monitored frames with each data-quality fault", _quality),
    "latency.p95": ("95th percentile of preprocess + inference + postprocess (ms)",
                    lambda s: _one(((s.get("latency") or {}).get("total_ms") or {}).get("p95"))),
    "fps": ("frames delivered per second", _fps),
    "cpu": ("agent process CPU (%)", _resource("process_cpu_percent")),
    "memory": ("system memory in use (%)", _resource("memory_percent")),
    "disk": ("disk in use (%)", _resource("disk_percent")),
    "temperature": ("hottest reading per sensor group (degrees C)", _temperatures),
    "outbox.pending": ("messages waiting in the outbox",
                       lambda s: _one((s.get("outbox") or {}).get("pending"))),
    "signal": ("no usable picture (1 while lost), per fault; reported at once by the "
               "monitor, not read from windows", lambda s: {}),
}
SIGNAL = "signal"
"""The metric whose value comes from ``SignalChange`` events (``AlertEngine.signal``)."""

_GROUPS = {"drift.severity": "drift", "drift.score": "drift", "drift.feature": "drift",
           "anomaly.rate": "drift", "quality": "quality", SIGNAL: "quality"}
"""Default incident groups by metric: the input changed (drift), no usable input (quality)."""


def incident_group(rule: RuleConfig) -> str:
    """The rule's incident group: its ``incident`` setting, else the default of its metric
    (``drift`` for drift.* and anomaly.rate, ``quality`` for quality and signal), else the
    rule's own name (a group of its own)."""
    return rule.incident or _GROUPS.get(rule.metric) or rule.name


def observe(metric: str, summary: Summary) -> Values:
    return METRICS[metric][1](summary)
