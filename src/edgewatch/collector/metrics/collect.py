"""Turning what the store and the ingest know into metric samples, one scrape at a time.

A device's samples come from its :class:`~edgewatch.collector.store.DeviceState` (status,
manifest, counts) and its latest summary; fleet samples count devices by state and verdict;
peer samples compare devices sharing a reference; ingest samples copy the ingest counters.
A value that cannot be exported (not finite, overflowing, or in a stored row that does not
decode) is left out and counted by :class:`_Families`: one device's data never fails the
scrape.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edgewatch.collector.advisory import AdvisoryReport
from edgewatch.collector.fleet import (
    MIN_PEER_DEVICES,
    DeviceStateName,
    counts_as_drifting,
    peer_outliers,
)
from edgewatch.collector.metrics.catalogue import (
    BAD_REASONS,
    DEVICE_STATES,
    FRAME_CATEGORIES,
    MAX_FEATURES,
    MAX_INFO_VALUE,
    MAX_SENSORS,
    MESSAGE_KINDS,
    METRICS,
    OTHER_FAULT,
    PERCENTILES,
    PREFIX,
    SEVERITIES,
    SPECS,
    UNEXPORTABLE_REASONS,
    DeviceLabels,
    MetricSpec,
)
from edgewatch.collector.store import DeviceState
from edgewatch.contracts.summary import (
    Drift,
    Resources,
    Sketch,
    Summary,
    undelta_keys,
)
from edgewatch.contracts.vocabulary import QUALITY_FAULTS
from edgewatch.errors import StatsError
from edgewatch.stats import LogSketch

if TYPE_CHECKING:
    from edgewatch.collector.ingest_stats import IngestStats

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_MIB = 1024.0 * 1024.0
_MS = 1e-3
_Family = GaugeMetricFamily | CounterMetricFamily


# --------------------------------------------------------------------------- helpers


class DeviceSource(Protocol):
    """What the collector reads: :class:`edgewatch.collector.store.Store` fits."""

    def devices(self) -> list[DeviceState]: ...

    def summaries(self, device: str, limit: int = 20) -> list[Summary]: ...


def _names(keys: Iterable[str], limit: int) -> list[str]:
    """The usable label values among ``keys``: short plain names, sorted, at most ``limit``."""
    return sorted(k for k in keys if _NAME.fullmatch(k))[:limit]


def _info(value: str | None) -> str:
    return "" if value is None else value[:MAX_INFO_VALUE]


def latency_quantile(sketch: Sketch, q: float) -> float:
    """Quantile ``q`` of a summary's latency sketch (its keys are sent as differences), as
    the agent computes it; NaN when the sketch is empty. StatsError or OverflowError for a
    sketch no agent sends (an accuracy outside (0, 1), keys and counts of unequal length,
    keys beyond any float)."""
    restored = LogSketch.from_dict({
        "accuracy": sketch.accuracy, "count": sketch.n, "zero": sketch.zero,
        "max": sketch.max, "keys": undelta_keys(sketch.keys), "counts": sketch.counts})
    return restored.quantile(q)


class _Families:
    """The metric families of one scrape, created on first use, yielded in METRICS order.

    Values that cannot be exported are left out and counted in ``unexportable`` (by
    reason): a non-finite or overflowing value (``invalid``), a stored row that does not
    decode (``undecodable``)."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self.unexportable: dict[str, int] = dict.fromkeys(UNEXPORTABLE_REASONS, 0)

    def add(self, name: str, labels: Sequence[str], value: float | None) -> None:
        """Add one sample; ``None`` values are skipped, non-finite ones counted."""
        if value is None:
            return
        try:
            number = float(value)
        except (OverflowError, TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            self.skip("invalid")
            return
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _family(SPECS[name])
        family.add_metric(list(labels), number)

    def skip(self, reason: str, n: int = 1) -> None:
        self.unexportable[reason] += n

    @contextlib.contextmanager
    def guard(self, key: DeviceLabels, what: str) -> Iterator[None]:
        """Run one device's group of samples; an error in it skips the rest of the group
        (counted as ``invalid``), never the scrape."""
        try:
            yield
        except Exception as exc:
            self.skip("invalid")
            log.warning("metrics: device %.130r: %s left out of this scrape: %s: %s",
                        key[0], what, type(exc).__name__, exc)

    def __iter__(self) -> Iterator[Metric]:
        for spec in METRICS:
            family = self._families.get(spec.name)
            if family is not None and family.samples:
                yield family


def _family(spec: MetricSpec) -> _Family:
    if spec.kind == "counter":
        return CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)


# --------------------------------------------------------------------------- per device


def _device_samples(out: _Families, state: DeviceState, status: DeviceStateName,
                    now: float) -> None:
    """Status, bookkeeping and (when there is one) latest-summary metrics of one device."""
    key: DeviceLabels = (state.device, state.fleet)
    manifest = state.manifest
    if manifest is not None:
        out.add(PREFIX + "device_info", (*key, _info(manifest.model_name),
                                         _info(manifest.adapter),
                                         _info(manifest.reference_id),
                                         _info(manifest.agent_version)), 1.0)
    else:
        out.add(PREFIX + "device_info", (*key, "", "", "", ""), 1.0)
    out.add(PREFIX + "device_online", key, float(state.online))
    out.add(PREFIX + "device_stale", key, float(status == "stale"))
    out.add(PREFIX + "device_last_seen_timestamp_seconds", key, state.last_seen)
    out.add(PREFIX + "device_status_timestamp_seconds", key, state.status_time)
    end = state.last_window_end
    out.add(PREFIX + "device_last_window_end_timestamp_seconds", key, end)
    out.add(PREFIX + "device_window_age_seconds", key,
            None if end is None else max(now - end, 0.0))
    out.add(PREFIX + "device_summaries", key, float(state.summaries))
    out.add(PREFIX + "historical_messages", key, float(state.historical))
    out.add(PREFIX + "seq_gaps", key, float(state.gaps))
    out.add(PREFIX + "active_alerts", key, float(state.active_alerts))
    if state.unreadable:
        out.skip("undecodable", state.unreadable)
    if state.last_summary is not None:
        _summary_samples(out, key, state.last_summary)


def _summary_samples(out: _Families, key: DeviceLabels, summary: Summary) -> None:
    """Metrics read from one device's latest summary; each group stands alone."""
    if summary.drift is not None:
        with out.guard(key, "drift"):
            _drift_samples(out, key, summary.drift)
    with out.guard(key, "frames"):
        _frame_samples(out, key, summary)
    for metric, stage in (("inference_latency_seconds", "inference_ms"),
                          ("frame_latency_seconds", "total_ms")):
        sketch = summary.latency.get(stage)
        if sketch is not None:
            with out.guard(key, f"latency {stage}"):
                _latency_samples(out, key, metric, sketch)
    with out.guard(key, "resources"):
        _resource_samples(out, key, summary.resources)
    if summary.quality:
        with out.guard(key, "quality"):
            _quality_samples(out, key, summary.quality)
    anomaly = summary.anomaly
    out.add(PREFIX + "anomaly_rate", key,
            anomaly.frames / anomaly.scored if anomaly.scored else 0.0)
    if summary.outbox is not None:
        out.add(PREFIX + "outbox_pending_messages", key, float(summary.outbox.pending))
        out.add(PREFIX + "outbox_degraded", key, float(bool(summary.outbox.degraded)))


def _drift_samples(out: _Families, key: DeviceLabels, drift: Drift) -> None:
    out.add(PREFIX + "drift_severity", key, SEVERITIES[drift.severity])
    out.add(PREFIX + "drift_score", key, drift.score)
    out.add(PREFIX + "drift_insufficient_data", key, float(drift.insufficient))
    for name in _names({*drift.effects, *drift.flagged}, MAX_FEATURES):
        flagged = drift.flagged.get(name)
        effect = drift.effects.get(name, None if flagged is None else flagged.effect)
        status = "ok" if flagged is None else flagged.status
        out.add(PREFIX + "feature_drift_effect", (*key, name), effect)
        out.add(PREFIX + "feature_drift_status", (*key, name), SEVERITIES[status])


def _frame_samples(out: _Families, key: DeviceLabels, summary: Summary) -> None:
    frames = summary.frames
    for category in FRAME_CATEGORIES:
        out.add(PREFIX + "window_frames", (*key, category), float(getattr(frames, category)))
    length = summary.window.end - summary.window.start
    out.add(PREFIX + "window_duration_seconds", key, length)
    if length > 0:
        out.add(PREFIX + "frames_per_second", key, frames.seen / length)
    offered = frames.monitored + frames.dropped  # of the frames sampling selected
    out.add(PREFIX + "frames_dropped_ratio", key,
            frames.dropped / offered if offered > 0 else 0.0)


def _latency_samples(out: _Families, key: DeviceLabels, metric: str, sketch: Sketch) -> None:
    if sketch.n == 0:
        return  # no frame timed: unknown, not bad
    for percentile, q in PERCENTILES:
        out.add(PREFIX + metric, (*key, percentile), latency_quantile(sketch, q) * _MS)


def _resource_samples(out: _Families, key: DeviceLabels, res: Resources) -> None:
    out.add(PREFIX + "process_cpu_percent", key, res.process_cpu_percent)
    out.add(PREFIX + "system_cpu_percent", key, res.system_cpu_percent)
    out.add(PREFIX + "memory_percent", key, res.memory_percent)
    out.add(PREFIX + "disk_percent", key, res.disk_percent)
    for metric, mib in (("process_rss_bytes", res.process_rss_mb),
                        ("disk_free_bytes", res.disk_free_mb)):
        out.add(PREFIX + metric, key, None if mib is None else mib * _MIB)
    temperatures = res.temperatures_c or {}
    for sensor in _names(temperatures, MAX_SENSORS):
        out.add(PREFIX + "temperature_celsius", (*key, sensor), temperatures[sensor])


def _quality_samples(out: _Families, key: DeviceLabels, quality: Mapping[str, int]) -> None:
    """Every known fault (0 when absent from the window); unknown ones sum to ``other``."""
    counts = dict.fromkeys(QUALITY_FAULTS, 0.0)
    other: float | None = None
    for fault, frames in quality.items():
        if fault in counts:
            counts[fault] += frames
        else:
            other = (other or 0.0) + frames
    for fault, n in counts.items():
        out.add(PREFIX + "quality_fault_frames", (*key, fault), n)
    out.add(PREFIX + "quality_fault_frames", (*key, OTHER_FAULT), other)


# --------------------------------------------------------------------------- fleet


def _fleet_samples(out: _Families, states: Sequence[DeviceState],
                   status: Mapping[str, DeviceStateName]) -> None:
    """Per fleet: devices by state, drifting devices, devices by severity (not offline)."""
    fleets: dict[str, dict[str, float]] = {}
    for state in states:
        counts = fleets.setdefault(state.fleet, {})
        counts[status[state.device]] = counts.get(status[state.device], 0.0) + 1
        if status[state.device] == "offline":
            continue
        drift = None if state.last_summary is None else state.last_summary.drift
        if drift is not None:
            counts["severity:" + drift.severity] = counts.get("severity:" + drift.severity,
                                                              0.0) + 1
        if counts_as_drifting(status[state.device], None if drift is None else drift.severity):
            counts["drifting"] = counts.get("drifting", 0.0) + 1
    for fleet, counts in sorted(fleets.items()):
        for name in DEVICE_STATES:
            out.add(PREFIX + "fleet_devices", (fleet, name), counts.get(name, 0.0))
        for severity in SEVERITIES:
            out.add(PREFIX + "fleet_severity_devices", (fleet, severity),
                    counts.get("severity:" + severity, 0.0))
        out.add(PREFIX + "fleet_drifting_devices", (fleet,), counts.get("drifting", 0.0))


def _peer_samples(out: _Families, source: DeviceSource, states: Sequence[DeviceState],
                  status: Mapping[str, DeviceStateName], threshold: float,
                  windows: int) -> None:
    """Peer outliers among devices reporting fresh summaries (``online``)."""
    fresh = [s for s in states if status[s.device] == "online" and s.last_summary is not None]
    if len(fresh) < MIN_PEER_DEVICES:
        return
    latest: dict[str, list[Summary]] = {}
    for s in fresh:
        if windows > 1:
            latest[s.device] = source.summaries(s.device, windows)
            # rows the store could not decode are left out of its answer
            out.skip("undecodable", max(min(windows, s.summaries) - len(latest[s.device]), 0))
        else:
            latest[s.device] = [s.last_summary] if s.last_summary is not None else []
    try:
        found = peer_outliers(latest, threshold_js=threshold, min_windows=1)
    except (StatsError, ArithmeticError, ValueError) as exc:
        log.warning("peer outliers skipped in this scrape: %s", exc)
        return
    fleet_of = {s.device: s.fleet for s in fresh}
    per_device: dict[str, int] = {}
    for o in found:
        if not _NAME.fullmatch(o.feature) or per_device.get(o.device, 0) >= MAX_FEATURES:
            continue
        per_device[o.device] = per_device.get(o.device, 0) + 1
        out.add(PREFIX + "peer_outlier", (o.device, fleet_of[o.device], o.feature), o.js)


def _advisory_samples(out: _Families, report: AdvisoryReport,
                      states: Sequence[DeviceState]) -> None:
    """Per device: retrain or camera check advised; per model: devices advised to retrain."""
    fleet_of = {s.device: s.fleet for s in states}
    for a in report.devices:
        if a.device not in fleet_of:
            continue  # decommissioned since the report was computed
        key = (a.device, fleet_of[a.device])
        out.add(PREFIX + "retrain_advised", key, float(a.action == "retrain"))
        out.add(PREFIX + "camera_check_advised", key, float(a.action == "clean"))
    for m in report.models:
        out.add(PREFIX + "model_retrain_advised_devices",
                (_info(m.model_name), m.model_sha256), float(m.retrain))


# --------------------------------------------------------------------------- collector


def _ingest_samples(out: _Families, stats: IngestStats) -> None:
    """The ingest counters; known kinds and reasons are always present (0 until seen)."""
    stored = dict(stats.stored)  # one C-level copy: safe against the writer thread
    bad = dict(stats.bad)
    out.add(PREFIX + "collector_connected", (), float(stats.connected))
    out.add(PREFIX + "collector_received_messages_total", (), float(stats.received))
    for kind in (*MESSAGE_KINDS, *sorted(set(stored) - set(MESSAGE_KINDS))):
        out.add(PREFIX + "collector_messages_total", (kind,), float(stored.get(kind, 0)))
    out.add(PREFIX + "collector_duplicates_total", (), float(stats.duplicates))
    for reason in (*BAD_REASONS, *sorted(set(bad) - set(BAD_REASONS))):
        out.add(PREFIX + "collector_bad_payloads_total", (reason,), float(bad.get(reason, 0)))
    out.add(PREFIX + "collector_store_errors_total", (), float(stats.store_errors))

