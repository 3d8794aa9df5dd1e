"""The collector's retention: the policy of ``[retention]`` and the thread that applies it
every ``retention.interval_s`` (``edgewatch fleet prune`` applies it on demand).

What a pass does, and why it is safe with a running ingest and with several collectors
sharing one database: :mod:`edgewatch.collector.store.retention`.
"""

from __future__ import annotations

import logging
import threading

from edgewatch.clock import Clock
from edgewatch.collector.store import Store, StoreError, open_store
from edgewatch.collector.store.retention import DAY, PruneReport, Retention
from edgewatch.config.collector import RetentionConfig

log = logging.getLogger(__name__)

__all__ = ["PruneReport", "Retention", "RetentionThread", "policy", "prune"]


def policy(cfg: RetentionConfig) -> Retention:
    """The store's retention policy from the ``[retention]`` section."""
    return Retention(raw_s=cfg.raw_days * DAY, hourly_s=cfg.hourly_days * DAY,
                     daily_s=cfg.daily_days * DAY, alerts_s=cfg.alerts_days * DAY,
                     quarantine_s=cfg.quarantine_days * DAY)


def prune(store: Store, cfg: RetentionConfig, now: float,
          dry_run: bool = False) -> PruneReport:
    """One pass at time ``now``."""
    return store.prune(policy(cfg), now, dry_run)


class RetentionThread:
    """Prunes the store every ``interval_s`` (the first pass one interval after start),
    on its own connection so that a long pass never holds the ingest's. A failed pass is
    logged and tried again at the next interval."""

    def __init__(self, url: str, cfg: RetentionConfig, clock: Clock,
                 stop: threading.Event | None = None) -> None:
        self.url = url
        self.cfg = cfg
        self.clock = clock
        self.stop = stop or threading.Event()
        self.passes = 0
        self.failures = 0
        self.last: PruneReport | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.cfg.interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="edgewatch-retention",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(self.cfg.interval_s):
            self.run_once()

    def run_once(self) -> PruneReport | None:
        """One pass now (by the injected clock); None when it failed (logged)."""
        try:
            with open_store(self.url) as store:
                report = prune(store, self.cfg, self.clock.now())
        except StoreError as exc:
            self.failures += 1
            log.error("retention pass failed (tried again in %.0f s): %s",
                      self.cfg.interval_s, exc)
            return None
        self.passes += 1
        self.last = report
        log.info("retention: %s", report.text())
        return report

    def close(self, timeout_s: float = 30.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
