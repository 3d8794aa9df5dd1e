"""Prometheus metrics of the fleet collector, read from the store at every scrape.

:class:`FleetCollector` is a custom ``prometheus_client`` collector: each scrape calls
``store.devices()`` once and turns the latest state of every device (status, manifest,
latest summary, counts) into metric families; nothing is cached between scrapes and no
global registry is touched. :func:`make_registry` builds a ``CollectorRegistry`` holding
it, :func:`serve` exposes a registry over HTTP (``/metrics``).

Every metric, its type and labels are listed in :data:`METRICS` and in ``docs/metrics.md``.
Label values are bounded: ``device`` and ``fleet`` by the devices in the store; ``feature``
by the feature set of the agent (at most :data:`MAX_FEATURES` per device); ``fault`` by
:data:`QUALITY_FAULTS` (+ ``other``); ``sensor`` by the device's sensor groups (at most
:data:`MAX_SENSORS`); ``percentile``, ``state``, ``severity``, ``category``, ``kind`` and
``reason`` by fixed lists.

>>> device_state_of(True, last_window_end=100.0, status_time=50.0, now=200.0,
...                 stale_after_s=300.0)
'online'
>>> device_state_of(True, last_window_end=100.0, status_time=50.0, now=500.0,
...                 stale_after_s=300.0)
'stale'
>>> device_state_of(False, last_window_end=100.0, status_time=50.0, now=200.0,
...                 stale_after_s=300.0)
'offline'
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from edgewatch.clock import Clock, SystemClock
from edgewatch.collector.fleet import MIN_PEER_DEVICES, peer_outliers
from edgewatch.collector.store import DeviceState, StoreError
from edgewatch.contracts.codec import REASONS
from edgewatch.contracts.summary import (
    QUALITY_FAULTS,
    SEVERITY_RANK,
    Drift,
    Frames,
    Resources,
    Sketch,
    Summary,
    undelta_keys,
)
from edgewatch.errors import EdgewatchError, StatsError
from edgewatch.stats import LogSketch

if TYPE_CHECKING:
    from edgewatch.collector.ingest import IngestStats

log = logging.getLogger(__name__)

PREFIX = "edgewatch_"
SEVERITIES: dict[str, float] = dict(SEVERITY_RANK)
"""Drift verdicts and the numbers ``edgewatch_drift_severity`` exports for them."""
DEVICE_STATES = ("online", "offline", "stale")
"""Values of the ``state`` label of ``edgewatch_fleet_devices``."""
PERCENTILES = (("50", 0.50), ("95", 0.95), ("99", 0.99))
"""``percentile`` label values and the quantiles recomputed from the latency sketch. (Not
``quantile``: Prometheus reserves that label for the summary type.)"""
FRAME_CATEGORIES: tuple[str, ...] = Frames.__struct_fields__
"""``category`` label values of ``edgewatch_window_frames`` (the ``frames`` counters)."""
# QUALITY_FAULTS (the agent's data-quality faults) are always exported, 0 when the window
# had none; unknown fault names add up under OTHER_FAULT.
OTHER_FAULT = "other"
MESSAGE_KINDS = ("summary", "alert", "status", "cmd_result")
"""``kind`` label values of ``edgewatch_collector_messages_total``."""
BAD_REASONS = tuple(REASONS)
"""``reason`` label values of ``edgewatch_collector_bad_payloads_total`` (always exported):
the reasons :func:`edgewatch.contracts.decode` refuses a payload for."""
UNEXPORTABLE_REASONS = ("invalid", "undecodable")
"""``reason`` label values of ``edgewatch_collector_unexportable_values_total``: a value
that is not finite, overflows or cannot be computed; a stored row that does not decode."""
MAX_FEATURES = 64
"""Features per device exported at most (the agent's feature set has about 25)."""
MAX_SENSORS = 16
"""Temperature sensor groups per device exported at most."""
MAX_INFO_VALUE = 128
"""Longest manifest value copied into ``edgewatch_device_info`` labels."""

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_MIB = 1024.0 * 1024.0
_MS = 1e-3

DeviceLabels = tuple[str, str]
"""(device, fleet): the labels every per-device metric starts with."""
Kind = Literal["gauge", "counter"]
_Family = GaugeMetricFamily | CounterMetricFamily
DeviceStateName = Literal["online", "offline", "stale"]


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric family: name as exposed, type, help text and label names."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]


_D = ("device", "fleet")


def _g(name: str, help_: str, *labels: str) -> MetricSpec:
    return MetricSpec(PREFIX + name, "gauge", help_, labels)


def _c(name: str, help_: str, *labels: str) -> MetricSpec:
    return MetricSpec(PREFIX + name, "counter", help_, labels)


METRICS: tuple[MetricSpec, ...] = (
    # --- device state
    _g("device_info", "Always 1; what the device's latest birth announced.",
       *_D, "model", "adapter", "reference_id", "agent_version"),
    _g("device_online", "1 when the device's latest status is online, else 0.", *_D),
    _g("device_stale", "1 when the device is online but no summary window ended within "
       "stale_after_s of now (nor since its birth), else 0.", *_D),
    _g("device_last_seen_timestamp_seconds",
       "When the latest message or birth from the device was received (Unix time).", *_D),
    _g("device_status_timestamp_seconds", "Time of the device's latest status message.", *_D),
    _g("device_last_window_end_timestamp_seconds",
       "End of the latest summary window (device clock, Unix time).", *_D),
    _g("device_window_age_seconds",
       "Collector time minus the end of the latest summary window (0 if negative).", *_D),
    _g("device_summaries", "Summaries stored for the device.", *_D),
    _g("historical_messages", "Stored messages the device sent from its backlog.", *_D),
    _g("seq_gaps", "Messages missing between the device's smallest and largest seq.", *_D),
    _g("active_alerts", "Alerts of the device that are firing, acknowledged or snoozed.", *_D),
    # --- drift (latest summary)
    _g("drift_severity", "Drift verdict of the latest window: 0 ok, 1 warning, 2 drift.", *_D),
    _g("drift_score", "Largest significant effect size of the latest window (0 if none).",
       *_D),
    _g("drift_insufficient_data",
       "1 when the latest window had too few frames for a drift verdict.", *_D),
    _g("feature_drift_effect", "Effect size of one feature in the latest window (reference "
       "standard deviations; Jensen-Shannon distance for label mixes).", *_D, "feature"),
    _g("feature_drift_status",
       "State of one feature in the latest window: 0 ok, 1 warning, 2 drift.", *_D, "feature"),
    # --- frames and latency (latest summary)
    _g("window_duration_seconds", "Length of the latest summary window.", *_D),
    _g("window_frames", "Frame counters of the latest summary window.", *_D, "category"),
    _g("frames_per_second", "Frames seen per second in the latest window.", *_D),
    _g("frames_dropped_ratio",
       "Share of the latest window's frames dropped because the monitor fell behind.", *_D),
    _g("inference_latency_seconds",
       "Model inference time per frame in the latest window, by percentile.", *_D,
       "percentile"),
    _g("frame_latency_seconds", "Whole per-frame processing time (preprocess, inference, "
       "postprocess) in the latest window, by percentile.", *_D, "percentile"),
    # --- resources (sampled when the latest window closed)
    _g("process_cpu_percent", "CPU used by the agent process (100 = one core).", *_D),
    _g("process_rss_bytes", "Resident memory of the agent process.", *_D),
    _g("system_cpu_percent", "CPU used by the whole device.", *_D),
    _g("memory_percent", "System memory in use on the device.", *_D),
    _g("disk_percent", "Usage of the agent's filesystem on the device.", *_D),
    _g("disk_free_bytes", "Free space on the agent's filesystem on the device.", *_D),
    _g("temperature_celsius", "Hottest reading of one sensor group.", *_D, "sensor"),
    # --- anomalies, quality, outbox (latest summary)
    _g("anomaly_rate", "Share of scored frames above the anomaly threshold (latest window).",
       *_D),
    _g("quality_fault_frames", "Frames showing a data-quality fault in the latest window.",
       *_D, "fault"),
    _g("outbox_pending_messages",
       "Messages waiting in the device's outbox when the latest summary was queued.", *_D),
    _g("outbox_degraded", "1 when the device's outbox cannot be written to disk.", *_D),
    # --- peers and fleet totals
    _g("peer_outlier", "Jensen-Shannon distance between a device's latest window of a "
       "feature and its peers' (same reference); only pairs above the threshold.",
       *_D, "feature"),
    _g("fleet_devices", "Devices of the fleet by state (online, offline, stale).",
       "fleet", "state"),
    _g("fleet_drifting_devices", "Devices not offline whose latest verdict is drift.",
       "fleet"),
    _g("fleet_severity_devices",
       "Devices not offline by the drift verdict of their latest summary.",
       "fleet", "severity"),
    # --- the collector itself
    _g("collector_store_up", "1 when this scrape could read the store, else 0."),
    _g("collector_scrape_duration_seconds", "Time this scrape spent reading the store."),
    _g("collector_connected", "1 while the collector is connected to the broker."),
    _c("collector_received_messages_total", "MQTT messages received by the collector."),
    _c("collector_messages_total", "Messages stored (new, not duplicates) by kind.", "kind"),
    _c("collector_duplicates_total", "Messages received again and ignored by the store."),
    _c("collector_bad_payloads_total", "Messages dropped as invalid, by reason.", "reason"),
    _c("collector_store_errors_total", "Failed attempts to write a batch to the store."),
    _c("collector_unexportable_values_total", "Device values left out of scrapes because "
       "they could not be exported (counted at every scrape that leaves them out).",
       "reason"),
)
"""Every metric family the collector exports (names as they appear in the exposition)."""

SPECS: dict[str, MetricSpec] = {m.name: m for m in METRICS}


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


def device_state_of(online: bool, last_window_end: float | None, status_time: float | None,
                    now: float, stale_after_s: float) -> DeviceStateName:
    """``offline``; ``stale`` when online but neither a summary window nor the birth ended
    within ``stale_after_s``; else ``online``."""
    if not online:
        return "offline"
    marks = [t for t in (last_window_end, status_time) if t is not None]
    if not marks or now - max(marks) > stale_after_s:
        return "stale"
    return "online"


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
    for fleet, counts in sorted(fleets.items()):
        for name in DEVICE_STATES:
            out.add(PREFIX + "fleet_devices", (fleet, name), counts.get(name, 0.0))
        for severity in SEVERITIES:
            out.add(PREFIX + "fleet_severity_devices", (fleet, severity),
                    counts.get("severity:" + severity, 0.0))
        out.add(PREFIX + "fleet_drifting_devices", (fleet,), counts.get("severity:drift", 0.0))


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


class FleetCollector(Collector):
    """Reads the store at every scrape and yields the ``edgewatch_*`` metric families.

    ``stats`` are the ingest counters of the collector process (None: not exported).
    ``clock.now()`` is the time summary ages and staleness are measured against. A device
    is stale when it is online but no summary window ended within ``stale_after_s`` (nor
    since its birth). Peer outliers compare each fresh device's latest ``peer_windows``
    summaries with those of the other devices sharing its reference (1: no extra query);
    they are computed at every scrape (``peers=False`` turns them off).
    A store that cannot be read gives ``edgewatch_collector_store_up 0`` and no device
    metrics; the scrape itself still succeeds. A device value that cannot be exported (not
    finite, overflowing, or in a stored row that does not decode) is left out and counted
    in ``edgewatch_collector_unexportable_values_total``: one device's data never fails
    the scrape.
    """

    def __init__(self, store: DeviceSource, stats: IngestStats | None = None,
                 clock: Clock | None = None, stale_after_s: float = 300.0,
                 registry: CollectorRegistry | None = None, *,
                 peers: bool = True, peer_js_threshold: float = 0.3,
                 peer_windows: int = 1) -> None:
        if not stale_after_s > 0:
            raise EdgewatchError(f"stale_after_s must be positive, got {stale_after_s!r}")
        if peer_windows < 1:
            raise EdgewatchError(f"peer_windows must be at least 1, got {peer_windows!r}")
        self.store = store
        self.stats = stats
        self.clock: Clock = clock or SystemClock()
        self.stale_after_s = float(stale_after_s)
        self.peers = peers
        self.peer_js_threshold = float(peer_js_threshold)
        self.peer_windows = int(peer_windows)
        self._unexportable: dict[str, int] = dict.fromkeys(UNEXPORTABLE_REASONS, 0)
        self._lock = threading.Lock()  # scrapes may run concurrently
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        """One scrape: read the store once, then build every family."""
        started = time.perf_counter()
        out = _Families()
        try:
            self._store_samples(out)
            up = 1.0
        except StoreError as exc:
            log.warning("metrics: cannot read the store: %s", exc)
            out = _Families()  # no half-built device metrics
            up = 0.0
        except Exception:  # a store answer no reader foresaw: still answer the scrape
            log.exception("metrics: reading the store failed")
            out = _Families()
            up = 0.0
        out.add(PREFIX + "collector_store_up", (), up)
        out.add(PREFIX + "collector_scrape_duration_seconds", (),
                time.perf_counter() - started)
        if self.stats is not None:
            _ingest_samples(out, self.stats)
        with self._lock:
            for reason, n in out.unexportable.items():
                self._unexportable[reason] += n
            totals = dict(self._unexportable)
        for reason, n in totals.items():
            out.add(PREFIX + "collector_unexportable_values_total", (reason,), float(n))
        return list(out)

    def _store_samples(self, out: _Families) -> None:
        states = self.store.devices()
        now = self.clock.now()
        status = {s.device: device_state_of(s.online, s.last_window_end, s.status_time, now,
                                            self.stale_after_s) for s in states}
        for state in states:
            with out.guard((state.device, state.fleet), "device"):
                _device_samples(out, state, status[state.device], now)
        _fleet_samples(out, states, status)
        if self.peers:
            _peer_samples(out, self.store, states, status, self.peer_js_threshold,
                          self.peer_windows)


def make_registry(store: DeviceSource, stats: IngestStats | None = None,
                  clock: Clock | None = None, stale_after_s: float = 300.0, *,
                  peers: bool = True, peer_js_threshold: float = 0.3, peer_windows: int = 1,
                  process_metrics: bool = True) -> CollectorRegistry:
    """A fresh registry with a :class:`FleetCollector` (and, if asked, the standard
    ``process_*`` metrics of this process)."""
    registry = CollectorRegistry()
    FleetCollector(store, stats, clock, stale_after_s, registry, peers=peers,
                   peer_js_threshold=peer_js_threshold, peer_windows=peer_windows)
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry


# --------------------------------------------------------------------------- HTTP


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving, release the socket and wait for the thread (idempotent)."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(5.0)
        self.server.server_close()

    def shutdown(self) -> None:
        """Same as :meth:`close` (the name ``socketserver`` servers use)."""
        self.close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(registry: CollectorRegistry, host: str = "127.0.0.1",
          port: int = 9108) -> MetricsServer:
    """Serve ``registry`` on ``http://host:port/metrics`` from a daemon thread (port 0: any
    free port, see :attr:`MetricsServer.port`)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise EdgewatchError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    return MetricsServer(server, thread)
