"""The catalogue of the collector's Prometheus metrics: every family's name, type, help text
and labels (:data:`METRICS`, documented in ``docs/metrics.md``), and the fixed label values.

Label values are bounded: ``device`` and ``fleet`` by the devices in the store; ``feature``
by the feature set of the agent (at most :data:`MAX_FEATURES` per device); ``fault`` by
:data:`~edgewatch.contracts.summary.QUALITY_FAULTS` (+ ``other``); ``sensor`` by the
device's sensor groups (at most :data:`MAX_SENSORS`); ``percentile``, ``state``,
``severity``, ``category``, ``kind`` and ``reason`` by fixed lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgewatch.contracts.codec import REASONS
from edgewatch.contracts.summary import Frames
from edgewatch.contracts.vocabulary import SEVERITY_RANK

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

DeviceLabels = tuple[str, str]
"""(device, fleet): the labels every per-device metric starts with."""
Kind = Literal["gauge", "counter"]


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
    # --- retrain advisories (docs/advisory.md)
    _g("retrain_advised", "1 when the device's advisory is retrain (persistent drift, clean "
       "quality, label-free estimate fallen by advisory.margin), else 0.", *_D),
    _g("camera_check_advised", "1 when the device's advisory is clean: camera faults "
       "explain its drift (clean the lens / check the camera), else 0.", *_D),
    _g("model_retrain_advised_devices", "Devices running a model (by its name and sha256) "
       "whose advisory is retrain.", "model", "model_sha256"),
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

