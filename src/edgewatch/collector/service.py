"""The collector process: store, ingest and the /metrics endpoint, with one stop event."""

from __future__ import annotations

import logging
import threading
from typing import Any

from edgewatch.clock import Clock, SystemClock
from edgewatch.collector.ingest import Ingestor
from edgewatch.collector.routing import AlertRouter, RouterThread
from edgewatch.collector.store import open_store
from edgewatch.config.collector import AlertingConfig, CollectorConfig

log = logging.getLogger(__name__)


class CollectorService:
    """Runs until ``stop`` is set (SIGINT/SIGTERM in the CLI)."""

    def __init__(self, cfg: CollectorConfig, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.routing = _routing(cfg.alerting, self.clock)
        self.store = open_store(cfg.store.url)
        self.ingestor = Ingestor(cfg.mqtt, cfg.store, self.store, clock=self.clock,
                                 alerts=self.routing)
        self.stop = threading.Event()
        self._http: Any = None
        self._metrics_store: Any = None

    def start(self) -> None:
        if self.routing is not None:
            self.routing.start()
        self.ingestor.start()
        if self.cfg.http.port:
            from edgewatch.collector.metrics import make_registry, serve

            self._metrics_store = open_store(self.cfg.store.url)  # scrapes never block ingest
            registry = make_registry(self._metrics_store, self.ingestor.stats, self.clock,
                                     self.cfg.fleet.stale_after_s,
                                     peer_js_threshold=self.cfg.fleet.peer_js_threshold,
                                     peer_windows=self.cfg.fleet.peer_windows)
            self._http = serve(registry, self.cfg.http.host, self.cfg.http.port)
            log.info("metrics on http://%s:%d/metrics", self.cfg.http.host, self.cfg.http.port)

    def run(self) -> None:
        self.start()
        try:
            self.stop.wait()
        finally:
            self.close()

    def close(self) -> None:
        self.ingestor.stop()
        if self.routing is not None:
            self.routing.close()
        if self._http is not None:
            self._http.close()
            self._metrics_store.close()
        self.store.close()


def _routing(cfg: AlertingConfig, clock: Clock) -> RouterThread | None:
    """The alert router's thread, or None when no target is configured."""
    router = AlertRouter(cfg.alertmanager_url, cfg.webhook_url, cfg.timeout_s, clock,
                         active_ttl_s=cfg.active_ttl_s, generator_url=cfg.generator_url)
    return RouterThread(router) if router.enabled else None
