"""The collector's advisory thread: recomputes every device's retrain advisory every
``advisory.interval_s`` (:func:`~edgewatch.collector.advisory.advise_fleet`) and publishes the
advisories that changed, retained, on ``<root>/<fleet>/<device>/advisory``
(:class:`~edgewatch.contracts.Advisory`, JSON); the rule itself is in
:mod:`edgewatch.collector.advisory`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from edgewatch.clock import Clock
from edgewatch.collector.advisory import (
    ADVISED,
    AdvisoryReport,
    AdvisorySource,
    Rule,
    advise_fleet,
)
from edgewatch.collector.store import Store, StoreError, open_store
from edgewatch.config.collector import AdvisoryConfig
from edgewatch.contracts.advisory import Advisory
from edgewatch.contracts.codec import JSON, encode
from edgewatch.contracts.topics import Topics

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def publish(self, topic: str, payload: bytes | None = None, qos: int = 0,
                retain: bool = False, properties: Any = None) -> Any: ...


def _change_key(a: Advisory, rule: Rule) -> tuple[Any, ...]:
    """What makes an advisory worth publishing again: its action, its drifted features,
    its faults beyond the threshold, the model's devices advised to retrain."""
    return (a.action, a.reference_id, tuple(f.feature for f in a.features),
            tuple(f for f, s in a.quality.items() if s >= rule.quality_share),
            a.fleet_evidence.model_retrain, a.fleet_evidence.model_drifting)


class AdvisoryThread:
    """Recomputes every device's advisory every ``interval_s`` (the first pass at start),
    on its own store connection, and publishes those that changed through the collector's
    MQTT client: watch, clean and retrain as retained ``edgewatch.advisory/1`` JSON
    messages, none and insufficient as an empty retained payload (which clears the topic).
    The first pass clears every device it has nothing to say about, so a stale advisory of
    a previous run does not linger. ``latest`` is the last report (for the metrics).

    The collector's client calls ``on_publish`` for every PUBACK: those of advisories stop
    here, the others go on to ``forward`` (the queued-command relay)."""

    def __init__(self, url: str, cfg: AdvisoryConfig, client: Publisher, topic_root: str,
                 clock: Clock, forward: Callable[..., None] | None = None,
                 stop: threading.Event | None = None) -> None:
        self.url = url
        self.cfg = cfg
        self.rule = Rule.from_config(cfg)
        self.client = client
        self.topic_root = topic_root
        self.clock = clock
        self.forward = forward
        self.stop = stop or threading.Event()
        self.latest: AdvisoryReport | None = None
        self.passes = 0
        self.failures = 0
        self.published = 0
        self._sent: dict[str, tuple[Any, ...] | None] = {}
        self._mids: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def latest_report(self) -> AdvisoryReport | None:
        return self.latest

    def start(self) -> None:
        if self.cfg.interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="edgewatch-advisory",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.run_once()
            if self.stop.wait(self.cfg.interval_s):
                return

    def run_once(self) -> AdvisoryReport | None:
        """One pass now (by the injected clock): compute, publish what changed; None when
        the store could not be read (logged, tried again at the next interval)."""
        try:
            with open_store(self.url) as store:
                report = self.compute(store)
        except StoreError as exc:
            self.failures += 1
            log.error("advisory pass failed (tried again in %.0f s): %s",
                      self.cfg.interval_s, exc)
            return None
        self.passes += 1
        self.latest = report
        self.publish_changes(report)
        return report

    def compute(self, store: Store | AdvisorySource) -> AdvisoryReport:
        return advise_fleet(store, self.rule, self.clock.now())

    def publish_changes(self, report: AdvisoryReport) -> int:
        """Publish the advisories that changed since the last pass; how many topics."""
        n = 0
        for a in report.devices:
            advised = a.action in ADVISED
            key = _change_key(a, self.rule) if advised else None
            if a.device in self._sent and self._sent[a.device] == key:
                continue
            if not advised and self._sent.get(a.device, ()) is None:
                continue  # already cleared
            topic = Topics(self.topic_root, a.fleet, a.device).advisory
            payload = encode(a, "json") if advised else b""
            self._publish(topic, payload)
            self._sent[a.device] = key
            n += 1
            if advised:
                log.info("advisory for %s: %s", a.device, a.summary)
        self.published += n
        return n

    def _publish(self, topic: str, payload: bytes) -> None:
        properties = None
        try:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            if payload and getattr(self.client, "protocol", 5) == 5:  # MQTT 5 only
                properties = Properties(PacketTypes.PUBLISH)
                properties.ContentType = JSON
        except ImportError:  # pragma: no cover - paho is a collector dependency
            properties = None
        info = self.client.publish(topic, payload, qos=1, retain=True,
                                   properties=properties)
        mid = getattr(info, "mid", None)
        if isinstance(mid, int):
            with self._lock:
                self._mids.add(mid)

    def on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                   properties: Any = None) -> None:
        with self._lock:
            if mid in self._mids:
                self._mids.discard(mid)
                return
        if self.forward is not None:
            self.forward(client, userdata, mid, reason, properties)

    def close(self, timeout_s: float = 30.0) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
