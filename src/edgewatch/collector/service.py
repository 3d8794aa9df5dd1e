"""The collector process: store, ingest and the /metrics endpoint, with one stop event."""

from __future__ import annotations

import logging
import threading
from typing import Any

from edgewatch.clock import Clock, SystemClock
from edgewatch.collector.advisory_publish import AdvisoryThread
from edgewatch.collector.commands import CommandRelay
from edgewatch.collector.evidence import ChunkStore
from edgewatch.collector.ingest import Ingestor
from edgewatch.collector.retention import RetentionThread
from edgewatch.collector.routing import AlertRouter, RouterThread
from edgewatch.collector.store import Store, StoreError, open_store
from edgewatch.config.collector import AlertingConfig, CollectorConfig
from edgewatch.contracts.alert import Alert
from edgewatch.supervision import Supervisor

log = logging.getLogger(__name__)


class LiveAlerts:
    """The alert router behind a look at the shared store: the alert of a device whose
    latest stored status is an offline one received after the alert was made is stale (it
    was on its way when the device went away) and is not routed (docs/alerts.md, "Offline
    devices"). Instances of a shared group receive a device's statuses and alerts in turns,
    so whether it is offline is read from the store they share, where each instance commits
    what it received; the alert's own time against the status's keeps the answer right
    whichever instance commits first. Runs on the ingest's store thread, after the commit
    that made the alert new."""

    def __init__(self, router: RouterThread, store: Store) -> None:
        self.router = router
        self.store = store
        self.stale = 0

    def submit(self, fleet: str, payload: Alert) -> None:
        try:
            state = self.store.device(payload.device)
        except StoreError as exc:  # better a stale alert routed than a live one lost
            log.warning("routing alert %.80r without its device's status: %s", payload.id,
                        exc)
            state = None
        if (state is not None and not state.online and state.status_time is not None
                and payload.updated <= state.status_time):
            self.stale += 1
            log.debug("not routing alert %.80r of offline device %.130r", payload.id,
                      payload.device)
            return
        self.router.submit(fleet, payload)


class CollectorService:
    """Runs until ``stop`` is set (SIGINT/SIGTERM in the CLI)."""

    def __init__(self, cfg: CollectorConfig, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.routing = _routing(cfg.alerting, self.clock)
        self.store = open_store(cfg.store.url)
        # evidence chunks devices send when asked (edgewatch evidence pull)
        self.evidence = ChunkStore(cfg.evidence.dir)
        alerts = None if self.routing is None else LiveAlerts(self.routing, self.store)
        self.ingestor = Ingestor(cfg.mqtt, cfg.store, self.store, clock=self.clock,
                                 alerts=alerts, evidence=self.evidence)
        # operator commands queued for offline devices: delivered on their birth (live
        # births only in a shared group: each reaches one instance, retained ones all)
        self.commands = CommandRelay(self.store, self.ingestor.client, cfg.mqtt.topic_root,
                                     cfg.commands.expire_s, self.clock,
                                     retained_births=not cfg.mqtt.shared_group)
        self.ingestor.commands = self.commands
        self.ingestor.client.on_publish = self.commands.on_publish
        # retrain advisories, recomputed every advisory.interval_s, published when changed;
        # PUBACKs of advisories stop there, the others go on to the command relay
        self.advisories = AdvisoryThread(cfg.store.url, cfg.advisory, self.ingestor.client,
                                         cfg.mqtt.topic_root, self.clock,
                                         forward=self.commands.on_publish)
        self.ingestor.client.on_publish = self.advisories.on_publish
        self.stop = threading.Event()
        self.retention = RetentionThread(cfg.store.url, cfg.retention, self.clock)
        self._http: Any = None
        self._metrics_store: Any = None
        self._last_finished = 0

    def start(self) -> None:
        if self.routing is not None:
            self.routing.start()
        self.ingestor.start()
        self.retention.start()
        self.advisories.start()
        if self.cfg.http.port:
            from edgewatch.collector.metrics import make_registry, serve

            self._metrics_store = open_store(self.cfg.store.url)  # scrapes never block ingest
            registry = make_registry(self._metrics_store, self.ingestor.stats, self.clock,
                                     self.cfg.fleet.stale_after_s,
                                     peer_js_threshold=self.cfg.fleet.peer_js_threshold,
                                     peer_windows=self.cfg.fleet.peer_windows,
                                     advisories=self.advisories.latest_report)
            from edgewatch.collector.report_source import http_report

            self._http = serve(registry, self.cfg.http.host, self.cfg.http.port,
                               report=http_report(self.cfg, self.clock.now))
            log.info("metrics on http://%s:%d/metrics", self.cfg.http.host, self.cfg.http.port)

    def run(self, supervisor: Supervisor | None = None) -> None:
        """Serve until ``stop`` is set. With a ``supervisor`` (systemd): READY=1 once the
        broker has accepted the collector (HTTP is served by then), then WATCHDOG=1 while
        ``progressing``."""
        try:
            self.start()
            if supervisor is None:
                self.stop.wait()
            else:
                self._supervised(supervisor)
        finally:
            if supervisor is not None:
                supervisor.stopping("stopping: storing what was received")
            self.close()

    def _supervised(self, supervisor: Supervisor) -> None:
        broker = f"{self.cfg.mqtt.host}:{self.cfg.mqtt.port}"
        supervisor.say(f"connecting to the broker at {broker}")
        while not self.ingestor.stats.connected:
            if self.stop.wait(0.1):
                return
        supervisor.status = self.status
        supervisor.ready()
        supervisor.start()
        period = min(supervisor.interval_s / 4, 1.0)  # several looks per watchdog period
        while not self.stop.wait(period):
            if self.progressing():
                supervisor.beat()

    def progressing(self) -> bool:
        """Whether the collector works: paho's network thread runs (reconnecting counts),
        the store's thread runs, and no store write is stuck: either none is under way or
        one finished since the last look. A database that is down fails fast and is retried
        (a restart would not fix it): that is progress; a write blocked for a whole watchdog
        period (a lock never released, a hung connection) is not."""
        network = getattr(self.ingestor.client, "_thread", None)  # paho's loop_start thread
        writer = getattr(self.ingestor, "_writer", None)
        if network is None or not network.is_alive() or (writer and not writer.is_alive()):
            return False
        finished = self.ingestor.writes_finished
        moved, self._last_finished = finished != self._last_finished, finished
        return moved or self.ingestor.write_started is None

    def status(self) -> str:
        """The status line: connection, what was stored, a write that takes long."""
        s = self.ingestor.stats
        broker = f"{self.cfg.mqtt.host}:{self.cfg.mqtt.port}"
        head = (f"connected to {broker}" if s.connected
                else f"reconnecting to the broker at {broker}")
        text = f"{head}: {sum(s.stored.values())} stored, {s.duplicates} duplicates"
        if s.store_errors:
            text += f", {s.store_errors} store errors (retried)"
        started = self.ingestor.write_started
        if started is not None and self.clock.monotonic() - started >= 5.0:
            text += f", a store write under way for {self.clock.monotonic() - started:.0f} s"
        return text

    def close(self) -> None:
        self.retention.close()
        self.advisories.close()
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
                         active_ttl_s=cfg.active_ttl_s, generator_url=cfg.generator_url,
                         runbook_url=cfg.runbook_url)
    return RouterThread(router) if router.enabled else None
