"""The collector's ingest: a persistent MQTT session, validation, batched idempotent storage.

Messages are acknowledged (manual PUBACK) only after the transaction holding them has
committed, so a collector killed at any moment loses nothing: the broker redelivers
whatever was not acknowledged, and the store ignores what it already has.

Nothing a device sends stalls the ingest. A payload that does not decode into its contract
is counted in ``stats.bad[reason]`` (reason: one of :data:`edgewatch.contracts.codec.REASONS`),
logged at most once a minute per reason, and acknowledged. A decoded message the store
refuses (a value the database cannot take) is kept, bytes and topic, in the store's
``quarantine`` table in the transaction that stores the rest of its batch, and counted
under ``store``. Only a store that fails as a whole (database unreachable) holds the batch
back: it is retried, and not acknowledged until it commits.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgewatch.clock import Clock, SystemClock
from edgewatch.collector.store import Item, Quarantined, RejectedPayload
from edgewatch.collector.validate import check
from edgewatch.config.collector import CollectorMqttConfig, StoreConfig
from edgewatch.config.mqtt import secure
from edgewatch.contracts.alert import Alert
from edgewatch.contracts.codec import Rejected
from edgewatch.contracts.evidence import EvidenceChunk
from edgewatch.contracts.topics import LEAVES

log = logging.getLogger(__name__)

LOG_EVERY_S = 60.0
"""A refusal is logged at most once per reason in this many seconds."""

__all__ = ["Inbox", "IngestStats", "Ingestor", "Item", "make_client", "subscriptions"]


class Store(Protocol):
    def ingest_many(self, items: Sequence[Item],
                    quarantine: Sequence[Quarantined] = ()) -> list[bool]: ...


class CommandSink(Protocol):
    """What sees every stored batch for the operators' queued commands
    (:class:`edgewatch.collector.commands.CommandRelay`); runs on the store thread."""

    def stored(self, items: Sequence[Item]) -> None: ...
    def tick(self) -> None: ...


class EvidenceSink(Protocol):
    """Where evidence chunks go (:class:`edgewatch.collector.evidence.ChunkStore`): written
    on the store thread, before their PUBACK."""

    def put(self, device: str, chunk: EvidenceChunk) -> str: ...


class AlertSink(Protocol):
    """Where new alert messages go (alert_routing.RouterThread); must not block."""

    def submit(self, fleet: str, payload: Alert) -> None: ...


@dataclasses.dataclass
class IngestStats:
    """Counters exported as metrics."""

    received: int = 0
    stored: Counter[str] = dataclasses.field(default_factory=Counter)
    duplicates: int = 0
    bad: Counter[str] = dataclasses.field(default_factory=Counter)
    """Refused messages by reason (only the keys of codec.REASONS; ``store``: quarantined)."""
    store_errors: int = 0
    """Failed store transactions (retried)."""
    unexpected: int = 0
    """Messages on which the ingest itself failed (a bug): logged, acknowledged, dropped."""
    connected: bool = False
    chunks: Counter[str] = dataclasses.field(default_factory=Counter)
    """Evidence chunks by outcome (stored, joined, duplicate, corrupt, invalid, ignored:
    no evidence directory)."""


class Inbox:
    """Messages received and not yet stored: the MQTT thread puts one at a time (blocking
    while ``maxsize`` wait: paho stops reading, the broker keeps the rest), the store thread
    takes them in batches. The store thread is woken when a batch starts and when it is
    full, not for every message (each wake-up is a trip between the threads)."""

    def __init__(self, maxsize: int, batch: int) -> None:
        self.maxsize, self.batch = maxsize, batch
        self._items: collections.deque[tuple[int, int, Item | None]] = collections.deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, entry: tuple[int, int, Item | None]) -> None:
        with self._cond:
            while len(self._items) >= self.maxsize:
                self._cond.wait()
            self._items.append(entry)
            if len(self._items) in (1, self.batch):
                self._cond.notify_all()

    def take(self, wait_s: float, fill_s: float) -> list[tuple[int, int, Item | None]]:
        """Up to ``batch`` entries: waits up to ``wait_s`` for the first, then up to
        ``fill_s`` for the batch to fill; [] when nothing came."""
        with self._cond:
            if not self._items and not self._cond.wait_for(lambda: self._items, wait_s):
                return []
            deadline = time.monotonic() + fill_s
            while len(self._items) < self.batch and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            items = self._items
            batch = [items.popleft() for _ in range(min(len(items), self.batch))]
            self._cond.notify_all()  # room for a put that waits
            return batch


class RateLimitedLog:
    """Logs a warning at most once per key in ``every_s`` seconds; says how many were not
    logged in between."""

    def __init__(self, clock: Clock, every_s: float = LOG_EVERY_S) -> None:
        self.clock = clock
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._skipped: Counter[str] = Counter()
        self._lock = threading.Lock()

    def warning(self, key: str, fmt: str, *args: Any) -> bool:
        """Log unless ``key`` was logged less than ``every_s`` ago; whether it was."""
        now = self.clock.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every_s:
                self._skipped[key] += 1
                return False
            self._last[key] = now
            skipped = self._skipped.pop(key, 0)
        if skipped:
            fmt += " (and %d more since the last report)"
            args = (*args, skipped)
        log.warning(fmt, *args)
        return True


def subscriptions(cfg: CollectorMqttConfig) -> list[str]:
    """One filter per device -> collector leaf (:data:`~edgewatch.contracts.topics.LEAVES`).

    Never ``<root>/+/+/#``: that would match the command topics (``<device>/cmd/<name>``)
    too, so the broker would always find a subscriber for a command and could never answer
    an operator's PUBLISH with "no matching subscribers" (MQTT 5 reason 16) when the device
    is offline. With ``shared_group``, each filter is ``$share/<group>/...``.
    """
    topics = [f"{cfg.topic_root}/+/+/{leaf}" for leaf in LEAVES]
    if cfg.shared_group:
        return [f"$share/{cfg.shared_group}/{t}" for t in topics]
    return topics


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
                 clock: Clock | None = None, alerts: AlertSink | None = None,
                 commands: CommandSink | None = None,
                 evidence: EvidenceSink | None = None) -> None:
        self.cfg = cfg
        self.commands = commands
        self.evidence = evidence
        self.store_cfg = store_cfg
        self.store = store
        self.alerts = alerts
        self.clock = clock or SystemClock()
        self.stats = IngestStats()
        self.refusals = RateLimitedLog(self.clock)
        self.stop_event = threading.Event()
        self._queue = Inbox(store_cfg.queue_size, store_cfg.batch_size)
        self.client = make_client(cfg)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        """Set once the broker confirmed every subscription (SUBACK) of the connection."""
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
        client.subscribe([(t, 1) for t in subscriptions(self.cfg)])
        self.stats.connected = True
        log.info("collector connected to %s:%d", self.cfg.host, self.cfg.port)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any,
                      _p: Any = None) -> None:
        refused = [r for r in reasons or () if getattr(r, "is_failure", False)]
        if refused:
            log.error("the broker refused %d of the collector's subscriptions: %s (check "
                      "the ACL)", len(refused), refused[0])
            return
        self.subscribed.set()

    def _on_disconnect(self, *_: Any) -> None:
        self.stats.connected = False
        self.subscribed.clear()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        """Never raises: whatever happens, the message is queued for its acknowledgement."""
        item = None
        try:
            self.stats.received += 1
            item = self._item(msg)
        except Exception as exc:  # a bug: count it, log it (briefly), go on
            self.stats.unexpected += 1
            self.refusals.warning("unexpected", "ingest failed on a message: %s (debug logs "
                                  "have the traceback)", type(exc).__name__)
            log.debug("ingest failure", exc_info=True)
        # Blocks when the store falls behind: paho stops reading, the broker keeps the rest.
        self._queue.put((msg.mid, msg.qos, item))

    def _item(self, msg: mqtt.MQTTMessage) -> Item | None:
        """The message decoded for the store; None when it is refused or not stored."""
        topic = "?"
        try:
            try:
                topic = msg.topic
            except UnicodeDecodeError:
                raise Rejected("topic", "the topic is not UTF-8") from None
            props = msg.properties
            ctype = getattr(props, "ContentType", None) if props is not None else None
            raw = bytes(msg.payload)
            parsed = check(topic, raw, self.cfg.topic_root, ctype)
        except Rejected as exc:
            self.stats.bad[exc.reason] += 1
            self.refusals.warning(exc.reason, "refused a message on %.200r: %s: %.200s",
                                  topic, exc.reason, exc.detail)
            return None
        if parsed is None:
            return None
        return Item(parsed.leaf, parsed.fleet, parsed.device, parsed.message,
                    self.clock.now(), topic, raw, bool(msg.retain), parsed.canonical)

    # -- store thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        while not (self.stop_event.is_set() and not self._queue):
            batch = self._next_batch()
            if batch:
                self._store(batch)
            self._tick()

    def _tick(self) -> None:
        if self.commands is None:
            return
        try:
            self.commands.tick()
        except Exception as exc:  # queued commands must not stop the ingest
            self.stats.unexpected += 1
            log.error("queued commands: %s: %.300s", type(exc).__name__, exc)
    def _next_batch(self) -> list[tuple[int, int, Item | None]]:
        return self._queue.take(0.2, self.store_cfg.batch_wait_ms / 1000.0)

    def _store(self, batch: list[tuple[int, int, Item | None]]) -> None:
        items = [item for _, _, item in batch if item is not None]
        if any(isinstance(item.message, EvidenceChunk) for item in items):
            self._chunks([i for i in items if isinstance(i.message, EvidenceChunk)])
            items = [i for i in items if not isinstance(i.message, EvidenceChunk)]
        kept: list[Quarantined] = []
        fresh: list[bool] = []
        delay = 0.5
        while items or kept:
            try:
                fresh = self.store.ingest_many(items, kept)
                break
            except RejectedPayload as exc:  # a poison item: quarantine it, store the rest
                bad = items.pop(exc.index)
                kept.append(Quarantined(bad.received, bad.topic, "store", exc.detail, bad.raw))
                self.refusals.warning("store", "the store refused a message on %.200r (kept "
                                      "in quarantine): %.200s", bad.topic, exc.detail)
            except Exception as exc:  # the store (PostgreSQL) may be briefly unreachable
                self.stats.store_errors += 1
                log.error("store failed (%s: %.300s); retrying in %.1f s", type(exc).__name__,
                          (str(exc).splitlines() or [""])[0], delay)
                if self.stop_event.wait(delay):
                    return  # not acknowledged: the broker delivers them again
                delay = min(delay * 2, 30.0)
        if kept:
            self.stats.bad["store"] += len(kept)
        for item, new in zip(items, fresh):
            if new:
                self.stats.stored[item.kind] += 1
                if isinstance(item.message, Alert):
                    # routed once: when new; the service's router leaves out the stale ones
                    # of a device that is offline in the store (collector/service.py)
                    self._route(item.fleet, item.message)
            else:
                self.stats.duplicates += 1
        for mid, qos, _ in batch:
            if qos > 0:
                self.client.ack(mid, qos)
        if self.commands is not None and items:
            try:
                self.commands.stored(items)
            except Exception as exc:  # queued commands must not stop the ingest
                self.stats.unexpected += 1
                log.error("queued commands: %s: %.300s", type(exc).__name__, exc)

    def _chunks(self, items: list[Item]) -> None:
        """Evidence chunks go to files, not to the store (acknowledged after they are
        written; a failed write is logged and the chunk is asked for again by the next
        pull)."""
        for item in items:
            assert isinstance(item.message, EvidenceChunk)
            if self.evidence is None:
                self.stats.chunks["ignored"] += 1
                continue
            try:
                self.stats.chunks[self.evidence.put(item.device, item.message)] += 1
            except (OSError, ValueError) as exc:
                self.stats.chunks["error"] += 1
                self.refusals.warning("evidence", "cannot keep an evidence chunk of %.130r: "
                                      "%.200s", item.device, exc)

    def _route(self, fleet: str, alert: Alert) -> None:
        if self.alerts is None:
            return
        try:
            self.alerts.submit(fleet, alert)
        except Exception as exc:  # routing must not hold back acknowledgements
            self.stats.unexpected += 1
            log.error("cannot route alert %.80r: %s", alert.id, type(exc).__name__)
