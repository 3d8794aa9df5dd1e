"""The collector's ingest: a persistent MQTT session, validation, batched idempotent storage.

Messages are acknowledged (manual PUBACK) only after the transaction holding them has
committed, so a collector killed at any moment loses nothing: the broker redelivers
whatever was not acknowledged, and the store ignores what it already has.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import Counter
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgewatch.clock import Clock, SystemClock
from edgewatch.collector.config import CollectorMqttConfig, StoreConfig
from edgewatch.collector.store import RejectedPayload
from edgewatch.collector.validate import BadPayload, check
from edgewatch.mqtt_auth import secure

log = logging.getLogger(__name__)

Item = tuple[str, str, str, dict[str, Any], float]


class Store(Protocol):
    def ingest_many(self, items: list[Item]) -> list[bool]: ...


class AlertSink(Protocol):
    """Where new alert messages go (alert_routing.RouterThread); must not block."""

    def submit(self, fleet: str, payload: dict[str, Any]) -> None: ...


@dataclasses.dataclass
class IngestStats:
    """Counters exported as metrics."""

    received: int = 0
    stored: Counter[str] = dataclasses.field(default_factory=Counter)
    duplicates: int = 0
    bad: Counter[str] = dataclasses.field(default_factory=Counter)
    store_errors: int = 0
    connected: bool = False


def subscription(cfg: CollectorMqttConfig) -> str:
    topic = f"{cfg.topic_root}/+/+/#"
    return f"$share/{cfg.shared_group}/{topic}" if cfg.shared_group else topic


def make_client(cfg: CollectorMqttConfig) -> mqtt.Client:
    v5 = cfg.protocol == "5"
    kwargs: dict[str, Any] = {} if v5 else {"clean_session": False}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, manual_ack=True,
                         **kwargs)
    secure(client, cfg.username, cfg.password, cfg.tls)
    client.reconnect_delay_set(1, 30)
    return client


class Ingestor:
    """Subscribes to the fleet, validates, and stores in batches; acks after commit."""

    def __init__(self, cfg: CollectorMqttConfig, store_cfg: StoreConfig, store: Store, *,
                 clock: Clock | None = None, alerts: AlertSink | None = None) -> None:
        self.cfg = cfg
        self.store_cfg = store_cfg
        self.store = store
        self.alerts = alerts
        self.clock = clock or SystemClock()
        self.stats = IngestStats()
        self.stop_event = threading.Event()
        self._queue: queue.Queue[tuple[int, int, Item | None]] = queue.Queue(
            store_cfg.queue_size)
        self.client = make_client(cfg)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._writer = threading.Thread(target=self._write_loop, name="collector-store",
                                        daemon=True)

    def start(self) -> None:
        props = None
        if self.cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.cfg.session_expiry_s
        self._writer.start()
        kwargs: dict[str, Any] = {"properties": props, "clean_start": False} if props else {}
        self.client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s, **kwargs)
        self.client.loop_start()

    def stop(self) -> None:
        """Stop reading, store what was received, then disconnect."""
        self.stop_event.set()
        self._writer.join(10)
        self.client.disconnect()
        self.client.loop_stop()

    # -- MQTT thread ----------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode,
                    _p: Any = None) -> None:
        if reason.is_failure:
            log.error("broker refused the collector: %s", reason)
            return
        client.subscribe(subscription(self.cfg), qos=1)
        self.stats.connected = True
        log.info("collector connected to %s:%d", self.cfg.host, self.cfg.port)

    def _on_disconnect(self, *_: Any) -> None:
        self.stats.connected = False

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        try:
            parsed = check(msg.topic, msg.payload, self.cfg.topic_root)
        except BadPayload as exc:
            self.stats.bad[exc.reason] += 1
            log.warning("dropped a message on %s: %s", msg.topic[:200], exc)
            parsed = None
        item = None if parsed is None else (*parsed, self.clock.now())
        # Blocks when the store falls behind: paho stops reading, the broker keeps the rest.
        self._queue.put((msg.mid, msg.qos, item))

    # -- store thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        while not (self.stop_event.is_set() and self._queue.empty()):
            batch = self._next_batch()
            if batch:
                self._store(batch)

    def _next_batch(self) -> list[tuple[int, int, Item | None]]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.store_cfg.batch_wait_ms / 1000.0
        while len(batch) < self.store_cfg.batch_size:
            try:
                batch.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0.0)))
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list[tuple[int, int, Item | None]]) -> None:
        items = [item for _, _, item in batch if item is not None]
        delay = 0.5
        while items:
            try:
                fresh = self.store.ingest_many(items)
                break
            except RejectedPayload as exc:  # one bad item: drop it, store the rest
                self.stats.bad[f"store:{exc.reason}"[:40]] += 1
                log.warning("store refused a message: %s", exc)
                del items[exc.index]
            except Exception as exc:  # the store (PostgreSQL) may be briefly unreachable
                self.stats.store_errors += 1
                log.error("store failed (%s); retrying in %.1f s", exc, delay)
                if self.stop_event.wait(delay):
                    return  # not acknowledged: the broker delivers them again
                delay = min(delay * 2, 30.0)
        else:
            fresh = []
        for item, new in zip(items, fresh):
            if new:
                self.stats.stored[item[0]] += 1
                if item[0] == "alert" and self.alerts is not None:
                    self.alerts.submit(item[1], item[3])  # routed once: only when new
            else:
                self.stats.duplicates += 1
        for mid, qos, _ in batch:
            if qos > 0:
                self.client.ack(mid, qos)
