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

The modules: ``catalogue`` (the families, their names, help texts and label values),
``collect`` (store rows and ingest counters to samples, the unexportable-value guard),
``registry`` (:class:`FleetCollector`, :func:`make_registry`), ``http`` (:func:`serve`).
"""

from edgewatch.collector.fleet import DeviceStateName, device_state_of
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
    Kind,
    MetricSpec,
)
from edgewatch.collector.metrics.collect import DeviceSource, latency_quantile
from edgewatch.collector.metrics.http import MetricsServer, serve
from edgewatch.collector.metrics.registry import FleetCollector, make_registry
from edgewatch.contracts.vocabulary import QUALITY_FAULTS

__all__ = [
    "BAD_REASONS",
    "DEVICE_STATES",
    "FRAME_CATEGORIES",
    "MAX_FEATURES",
    "MAX_INFO_VALUE",
    "MAX_SENSORS",
    "MESSAGE_KINDS",
    "METRICS",
    "OTHER_FAULT",
    "PERCENTILES",
    "PREFIX",
    "QUALITY_FAULTS",
    "SEVERITIES",
    "SPECS",
    "UNEXPORTABLE_REASONS",
    "DeviceLabels",
    "DeviceSource",
    "DeviceStateName",
    "FleetCollector",
    "Kind",
    "MetricSpec",
    "MetricsServer",
    "device_state_of",
    "latency_quantile",
    "make_registry",
    "serve",
]
