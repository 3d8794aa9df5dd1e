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
import itertools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgewatch.clock import Clock, SystemClock
from edgewatch.collector.inbox import Entry, Inbox
from edgewatch.collector.ingest_batch import (
    IngestProcess,
    Outcome,
    Raw,
    Sent,
    WorkerDied,
    decode_raw,
    outcome_of,
    store_batch,
)
from edgewatch.collector.ingest_stats import IngestStats
from edgewatch.collector.mqtt_client import make_client, subscriptions
from edgewatch.collector.store import Item, Quarantined
from edgewatch.config.collector import CollectorMqttConfig, StoreConfig
from edgewatch.contracts.alert import Alert
from edgewatch.contracts.codec import Rejected
from edgewatch.contracts.evidence import EvidenceChunk
from edgewatch.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_SENT = 2
"""Batches handed to the second process and not yet acknowledged, at most."""

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
        self.write_started: float | None = None
        """When the store write under way started (monotonic); None: none is."""
        self.writes_finished = 0
        """Store writes finished (committed or failed): the supervisor's sign of progress."""
        self.process: IngestProcess | None = None
        """The second process that decodes and stores (``store.worker_process``)."""
        self._sent: collections.deque[tuple[list[Entry], Sent]] = collections.deque()
        """Batches in the second process, oldest first, not yet acknowledged."""
        try:  # the configuration file's rule, for a tree a caller built itself
            store_cfg.validate()
        except ValueError as exc:
            raise ConfigError(f"store: {exc}") from exc
        if store_cfg.worker_process:
            self.process = IngestProcess(store_cfg.url, cfg.topic_root)

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
        if self.process is not None:
            self.process.close()

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
        entry: Item | Raw | None = None
        try:
            self.stats.received += 1
            entry = self._entry(msg)
        except Exception as exc:  # a bug: count it, log it (briefly), go on
            self._unexpected(type(exc).__name__)
            log.debug("ingest failure", exc_info=True)
        # Blocks when the store falls behind: paho stops reading, the broker keeps the rest.
        self._queue.put((msg.mid, msg.qos, entry))

    def _unexpected(self, what: str) -> None:
        self.stats.unexpected += 1
        self.refusals.warning("unexpected", "ingest failed on a message: %s (debug logs have "
                              "the traceback)", what)

    def _entry(self, msg: mqtt.MQTTMessage) -> Item | Raw | None:
        """What the store thread gets: the message decoded (None when it is refused or not
        stored), or as received for the second process (evidence chunks excepted: the
        collector's own process writes them)."""
        topic = "?"
        try:
            try:
                topic = msg.topic
            except UnicodeDecodeError:
                raise Rejected("topic", "the topic is not UTF-8") from None
            props = msg.properties
            ctype = getattr(props, "ContentType", None) if props is not None else None
            raw = Raw(topic, bytes(msg.payload), ctype, bool(msg.retain), self.clock.now())
            if self.process is not None and not topic.endswith("/evidence"):
                return raw
            return decode_raw(raw, self.cfg.topic_root)
        except Rejected as exc:
            self._refused(exc.reason, topic, exc.detail)
            return None

    def _refused(self, reason: str, topic: str, detail: str) -> None:
        self.stats.bad[reason] += 1
        if reason == "store":
            self.refusals.warning("store", "the store refused a message on %.200r (kept in "
                                  "quarantine): %.200s", topic, detail)
        else:
            self.refusals.warning(reason, "refused a message on %.200r: %s: %.200s", topic,
                                  reason, detail)

    # -- store thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        while not (self.stop_event.is_set() and not self._queue):
            batch = self._next_batch()
            if batch:
                self._store(batch)
            self._finish_sent(wait=not batch)
            self._tick()
        self._finish_sent(wait=True)

    def _tick(self) -> None:
        if self.commands is None:
            return
        try:
            self.commands.tick()
        except Exception as exc:  # queued commands must not stop the ingest
            self.stats.unexpected += 1
            log.error("queued commands: %s: %.300s", type(exc).__name__, exc)

    def _next_batch(self) -> list[Entry]:
        # with a batch in the second process, come back soon to acknowledge it
        return self._queue.take(0.01 if self._sent else 0.2,
                                self.store_cfg.batch_wait_ms / 1000.0)

    def _store(self, batch: list[Entry]) -> None:
        entries = [entry for _, _, entry in batch if entry is not None]
        items = [e for e in entries if isinstance(e, Item)]
        if any(isinstance(item.message, EvidenceChunk) for item in items):
            self._chunks([i for i in items if isinstance(i.message, EvidenceChunk)])
            items = [i for i in items if not isinstance(i.message, EvidenceChunk)]
        raws = [e for e in entries if isinstance(e, Raw)]
        if raws:
            assert self.process is not None
            if not self._sent:
                self.write_started = self.clock.monotonic()
            self._sent.append((batch, self.process.send(raws)))
            return  # acknowledged by _finish_sent, once stored
        if items:
            done = self._retrying(lambda _: store_batch(self.store, items))
            if done is None:
                return  # stopped while the store was down: not acknowledged
            self._done(outcome_of(*done))
        # acknowledgements go in the order the messages came (MQTT asks it): after the
        # batches still in the second process (a batch of evidence chunks only)
        if self._finish_sent(wait=True):
            self._ack(batch)

    def _ack(self, batch: list[Entry]) -> None:
        for mid, qos, _ in batch:
            if qos > 0:
                self.client.ack(mid, qos)

    def _finish_sent(self, wait: bool) -> bool:
        """Acknowledge the batches the second process has stored, oldest first. Two at most
        are left with it (one stored while the next is received and sent: the second
        process never waits for the collector's own); ``wait``: none. False when the
        collector stopped while the store was down (the rest is not acknowledged)."""
        while self._sent and (wait or len(self._sent) > MAX_SENT
                              or self._sent[0][1].future.done()):
            batch, sent = self._sent.popleft()
            done = self._retrying(partial(self._outcome, sent))
            if done is None:  # the broker delivers them again
                self._sent.clear()
                return False
            self._done(done)
            self._ack(batch)
            if self._sent:
                self.write_started = self.clock.monotonic()
        return True

    def _outcome(self, sent: Sent, attempt: int) -> Outcome:
        """The outcome of a batch sent; after a failure, of the batch sent again."""
        assert self.process is not None
        return self.process.ingest(sent.batch) if attempt else self.process.outcome(sent)

    def _retrying(self, write: Callable[[int], T]) -> T | None:
        """``write(attempt)`` (0, 1, ...), tried again while the store fails as a whole
        (PostgreSQL briefly unreachable, the second process gone); None when the collector
        stops first."""
        delay = 0.5
        for attempt in itertools.count():
            self.write_started = self.clock.monotonic()
            try:
                return write(attempt)
            except Exception as exc:
                self.stats.store_errors += 1
                what = "ingest process" if isinstance(exc, WorkerDied) else "store"
                log.error("%s failed (%s: %.300s); retrying in %.1f s", what,
                          type(exc).__name__, (str(exc).splitlines() or [""])[0], delay)
            finally:
                self.write_started = None
                self.writes_finished += 1
            if self.stop_event.wait(delay):
                break  # not acknowledged: the broker delivers them again
            delay = min(delay * 2, 30.0)
        return None

    def _done(self, outcome: Outcome) -> None:
        """Count what a committed batch did, route its new alerts, tell the queued
        commands."""
        for refusal in outcome.refused:
            if refusal.reason == "unexpected":
                self._unexpected(refusal.detail)
            else:
                self._refused(refusal.reason, refusal.topic, refusal.detail)
        self.stats.stored.update(outcome.stored)
        self.stats.duplicates += outcome.duplicates
        for item, new in outcome.follow:
            if new and isinstance(item.message, Alert):
                # routed once: when new; the service's router leaves out the stale ones
                # of a device that is offline in the store (collector/service.py)
                self._route(item.fleet, item.message)
        if self.commands is not None and outcome.follow:
            try:
                self.commands.stored([item for item, _ in outcome.follow])
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
