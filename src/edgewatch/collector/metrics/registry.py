"""The ``prometheus_client`` collector that reads the store at every scrape, and the registry
holding it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from edgewatch.clock import Clock, SystemClock
from edgewatch.collector.advisory import AdvisoryReport, Rule, advise_fleet
from edgewatch.collector.fleet import device_state_of
from edgewatch.collector.metrics.catalogue import PREFIX, UNEXPORTABLE_REASONS
from edgewatch.collector.metrics.collect import (
    DeviceSource,
    _advisory_samples,
    _device_samples,
    _Families,
    _fleet_samples,
    _ingest_samples,
    _peer_samples,
)
from edgewatch.collector.store import StoreError
from edgewatch.errors import EdgewatchError

if TYPE_CHECKING:
    from edgewatch.collector.ingest_stats import IngestStats

log = logging.getLogger(__name__)


class FleetCollector(Collector):
    """Reads the store at every scrape and yields the ``edgewatch_*`` metric families.

    ``stats`` are the ingest counters of the collector process (None: not exported).
    ``clock.now()`` is the time summary ages and staleness are measured against. A device
    is stale when it is online but no summary window ended within ``stale_after_s`` (nor
    since its birth). Peer outliers compare each fresh device's latest ``peer_windows``
    summaries with those of the other devices sharing its reference (1: no extra query);
    they are computed at every scrape (``peers=False`` turns them off). Retrain advisories
    come from ``advisories`` (the collector's advisory thread's latest report); without
    one, or before its first pass, they are computed from the store at the scrape with the
    default rule (a store without ``reference``: none exported).
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
                 peer_windows: int = 1,
                 advisories: Callable[[], AdvisoryReport | None] | None = None) -> None:
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
        self.advisories = advisories
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
        report = self.advisories() if self.advisories is not None else None
        if report is None and hasattr(self.store, "reference"):
            report = advise_fleet(self.store, Rule(), now)  # type: ignore[arg-type]
        if report is not None:
            _advisory_samples(out, report, states)


def make_registry(store: DeviceSource, stats: IngestStats | None = None,
                  clock: Clock | None = None, stale_after_s: float = 300.0, *,
                  peers: bool = True, peer_js_threshold: float = 0.3, peer_windows: int = 1,
                  process_metrics: bool = True,
                  advisories: Callable[[], AdvisoryReport | None] | None = None
                  ) -> CollectorRegistry:
    """A fresh registry with a :class:`FleetCollector` (and, if asked, the standard
    ``process_*`` metrics of this process)."""
    registry = CollectorRegistry()
    FleetCollector(store, stats, clock, stale_after_s, registry, peers=peers,
                   peer_js_threshold=peer_js_threshold, peer_windows=peer_windows,
                   advisories=advisories)
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry
