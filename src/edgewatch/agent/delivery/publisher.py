"""Draining the outbox to the broker: QoS 1, a row leaves the outbox only after PUBACK.

One thread owns the paho client and drives its network loop itself, so connecting,
reconnecting (exponential backoff with full jitter), publishing and acknowledging happen
in one place. Each connection uses a fresh client: after a reconnect, anything not
acknowledged is published again from the outbox (same seq; the collector drops
duplicates by (device, boot_id, seq)), never from paho's own memory.

Payloads leave in ``mqtt.encoding`` (codec.encode: compressed MessagePack or JSON); under
MQTT 5 each names its content type. The outbox keeps JSON rows; a row is encoded when it is
published, but for a backlog: the outbox stores each row's historical payload already
encoded, so a drain only reads and sends bytes (``wire``). The reference profile
goes out retained on ``<device>/reference`` at the first connection of a boot and after each
switch of the default reference (``set_reference``); other threads hand the publisher what
it must keep retained (``set_reference``, ``retain``: ``retained``) and wake it; only its own
thread calls paho.

Draining: rows are read from the outbox ``READ_BATCH`` at a time in drain order (again from
the top whenever something new arrives: it may go first), published while fewer than
``mqtt.max_inflight`` wait for their PUBACK, and deleted in batches (``acks``).

The parts: ``pacing`` (reconnect backoff, drain rate), ``acks`` (PUBACKs batched into
outbox deletes), ``intake`` (commands received, results queued), ``retained`` (the
reference profile and the other retained topics), ``wire`` (the bytes a row
goes out as), ``bulk`` (evidence chunks, the lowest priority: only while the outbox is idle).
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Any, Protocol

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgewatch.agent.delivery import status
from edgewatch.agent.delivery.acks import AckBatch
from edgewatch.agent.delivery.bulk import Bulk, BulkInFlight
from edgewatch.agent.delivery.intake import CommandHandler, CommandIntake
from edgewatch.agent.delivery.pacing import Backoff, TokenBucket
from edgewatch.agent.delivery.retained import Retained, RetainedMessages
from edgewatch.agent.delivery.status import Manifest
from edgewatch.agent.delivery.wire import PackedProperties, Row, RowEncoder
from edgewatch.clock import Clock, SystemClock
from edgewatch.config.delivery import MqttConfig
from edgewatch.config.mqtt import secure
from edgewatch.contracts import Reference, codec
from edgewatch.contracts.topics import Topics

log = logging.getLogger(__name__)


READ_BATCH = 256
"""Outbox rows read at once while draining."""


class Queue(Protocol):
    def pending(self, limit: int, exclude: Collection[int] = ()) -> list[Any]: ...
    def ack_many(self, seqs: list[int]) -> None: ...
    def reject(self, seq: int, reason: str) -> None: ...
    def put(self, kind: str, payload: dict[str, Any], *, priority: int | None = None) -> int: ...


def make_client(cfg: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho client configured for the broker (TLS, credentials, protocol)."""
    protocol = mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311
    kwargs: dict[str, Any] = {} if protocol == mqtt.MQTTv5 else {"clean_session": True}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=protocol, **kwargs)
    client.max_inflight_messages_set(cfg.max_inflight)
    client.max_queued_messages_set(0)
    secure(client, cfg.username, cfg.password, cfg.tls)
    return client


class Publisher:
    """Keeps a connection to the broker and drains the outbox through it."""

    def __init__(self, cfg: MqttConfig, queue: Queue, topics: Topics, manifest: Manifest, *,
                 clock: Clock | None = None, commands: CommandHandler | None = None,
                 rng: random.Random | None = None, reference: Reference | None = None) -> None:
        self.cfg = cfg
        self.queue = queue
        self.topics = topics
        self.manifest = manifest
        self.encoding = cfg.encoding
        self.content_type = codec.content_type(cfg.encoding)
        self.rows = RowEncoder(cfg.encoding)
        """How rows go out (``wire``)."""
        self._publish_props = PackedProperties(self.content_type) \
            if cfg.protocol == "5" else None
        """The PUBLISH properties of every row (the same for all: packed once)."""
        self.retained = RetainedMessages(
            topics.for_kind("reference"),
            None if reference is None else self.encode(reference))
        """The reference profile and the other retained topics (``retained``)."""
        self.clock = clock or SystemClock()
        self.commands = commands
        self.intake = CommandIntake(queue, commands)
        self.client_id = cfg.client_id or f"edgewatch-{topics.device}"
        self.backoff = Backoff(cfg.reconnect_min_s, cfg.reconnect_max_s, rng)
        self.stop_event = threading.Event()
        self.connected = threading.Event()
        self.connections = 0
        self._wake = threading.Event()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._sent: set[int] = set()  # seqs published on the current connection
        self._ready: deque[Row] = deque()  # read in drain order, not yet published
        self._topics: dict[str, str] = {}  # outbox kind -> topic
        self._more = False  # the last read filled its batch: more rows may follow
        self._progress = threading.Condition()
        """Notified when acknowledged rows were deleted or nothing waits for a PUBACK."""
        self._connected_at = 0.0
        self._client: mqtt.Client | None = None
        self._thread = threading.Thread(target=self._run, name="edgewatch-publisher",
                                        daemon=True)
        self._rate = TokenBucket(cfg.drain_rate)
        self._acks = AckBatch(queue)
        self.bulk: Bulk | None = None
        """Evidence chunks, sent only while the outbox is idle (set before ``start``)."""
        self._bulk_inflight = BulkInFlight()
        self.updates: Callable[[str, bytes], None] | None = None
        """Receives the chunks of model updates pushed to the device (``update/<id>``,
        :class:`edgewatch.agent.update.receive.UpdateReceiver`; set before ``start``)."""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def retain(self, topic: str, message: msgspec.Struct) -> None:
        """Publish ``message`` retained on ``topic`` soon when connected, and again on every
        (re)connection: the broker keeps the latest (``update_status``). Any thread."""
        self.retained.set(topic, self.encode(message))
        self._wake.set()

    def set_reference(self, reference: Reference) -> None:
        """A new reference profile (a switch: ``reference.push``, ``reference.rebuild``):
        published retained soon when connected, else on connecting. Any thread."""
        self.retained.set_reference(self.encode(reference))
        self._wake.set()

    def _publish_retained(self, client: mqtt.Client, messages: list[Retained]) -> None:
        """Publish retained messages (the publisher's thread), keeping the reference's mid."""
        for topic, payload, is_reference in messages:
            info = client.publish(topic, payload, qos=1, retain=True,
                                  properties=self._properties())
            if is_reference:
                self.retained.published(info.mid)

    def wake(self) -> None:
        """Tell the publisher that the outbox has something new."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Announce a clean shutdown (retained 'offline') and disconnect."""
        self.stop_event.set()
        self._wake.set()
        self._thread.join(timeout)

    def wait_drained(self, timeout: float, *, only_connected: bool = False) -> bool:
        """Block until the outbox is empty (True) or the timeout passes (False); with
        ``only_connected``, give up at once while no broker connection is up."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while (left := deadline - time.monotonic()) > 0:
                if not self._inflight and not self._acks and not self.queue.pending(1):
                    return True
                if only_connected and not self.connected.is_set():
                    return False
                self._progress.wait(min(left, 0.05))
        return False

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stop_event.is_set():
            client = self._connect()
            if client is None:
                self.stop_event.wait(self.backoff.next())
                continue
            self._serve(client)
            self.connected.clear()
            if not self.stop_event.is_set():
                self.stop_event.wait(self.backoff.next())

    def _properties(self, packet: int = PacketTypes.PUBLISH) -> Properties | None:
        """The content-type property (MQTT 5 only; 3.1.1 has no properties)."""
        if self.cfg.protocol != "5":
            return None
        props = Properties(packet)
        props.ContentType = self.content_type
        return props

    def encode(self, message: msgspec.Struct | dict[str, Any]) -> bytes:
        """A message's payload in the configured encoding."""
        return codec.encode(message, self.encoding)

    def _connect(self) -> mqtt.Client | None:
        client = make_client(self.cfg, self.client_id)
        client.will_set(self.topics.status,
                        self.encode(status.offline(self.manifest, None, "connection lost")),
                        qos=1, retain=True, properties=self._properties(PacketTypes.WILLMESSAGE))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._inflight.clear()
        self._sent.clear()
        self._ready.clear()
        self._bulk_inflight.reset(self.bulk)  # the collector asks again for what it misses
        try:
            client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            log.warning("cannot reach broker %s:%d: %s", self.cfg.host, self.cfg.port, exc)
            return None
        self._client = client
        return client

    def _serve(self, client: mqtt.Client) -> None:
        """Run the network loop and publish while the connection lasts."""
        deadline = time.monotonic() + max(10.0, self.cfg.keepalive_s)
        while not self.stop_event.is_set():
            rc = client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                break
            if not self.connected.is_set():
                if time.monotonic() > deadline:
                    log.warning("broker did not accept the connection in time")
                    break
                continue
            self._flush_acks(force=not self._inflight)
            self._publish_retained(client, self.retained.due())
            self._publish_pending(client)
            self._publish_bulk(client)
        self._flush_acks(force=True)
        if self.stop_event.is_set() and self.connected.is_set():
            self._goodbye(client)
        with contextlib.suppress(OSError, ValueError):  # the socket may already be gone
            client.disconnect()
        self._client = None

    def _goodbye(self, client: mqtt.Client) -> None:
        info = client.publish(self.topics.status,
                              self.encode(status.offline(self.manifest, self.clock.now(),
                                                         "shutdown")),
                              qos=1, retain=True, properties=self._properties())
        end = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < end:
            if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                return

    # -- publishing -----------------------------------------------------------------------

    def _publish_pending(self, client: mqtt.Client) -> None:
        """Publish what the outbox holds while there is room in flight, reading it again
        from the top when told it holds something new (``_wake``: a new message, a
        connection), and the next batch when the last one was full (``_more``)."""
        room = self.cfg.max_inflight - len(self._inflight) - len(self._bulk_inflight)
        if room <= 0:
            return
        if self._wake.is_set():
            self._wake.clear()
            self._ready.clear()
            self._more = True
        ready = self._ready
        while room > 0:
            if not ready:
                if not self._more:
                    return
                rows = self.queue.pending(READ_BATCH, exclude=self._sent)
                self._more = len(rows) == READ_BATCH
                if not rows:
                    return
                ready.extend(rows)
            if not self._rate.take() or not self._publish_row(client, ready[0]):
                return  # the rest on a later turn
            ready.popleft()
            room -= 1

    def _publish_bulk(self, client: mqtt.Client) -> None:
        """One bulk message (an evidence chunk), only while the outbox is idle: nothing in
        flight and nothing new to read (``_wake`` clear)."""
        if self.bulk is None or self._inflight or self._wake.is_set() or self._ready \
                or self._more:
            return
        self._bulk_inflight.publish(client, self.bulk, self.topics.evidence, self.encode,
                                    self._publish_props)

    def _publish_row(self, client: mqtt.Client, row: Row) -> bool:
        historical = row.created < self._connected_at or \
            self.clock.now() - row.created > self.cfg.historical_after_s
        try:
            payload = self.rows.payload(row, historical)
        except (msgspec.DecodeError, msgspec.EncodeError, TypeError, codec.Rejected) as exc:
            log.error("outbox row seq %d cannot be encoded (%s); dropping it", row.seq, exc)
            self.queue.reject(row.seq, f"cannot be encoded: {exc}")
            return True
        topic = self._topics.get(row.kind)
        if topic is None:
            topic = self._topics[row.kind] = self.topics.for_kind(row.kind)
        info = client.publish(topic, payload, qos=1, properties=self._publish_props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self._inflight[info.mid] = row.seq
        self._sent.add(row.seq)
        return True

    # -- paho callbacks (on this thread, inside client.loop) ------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode,
                    _p: Any = None) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self.connections += 1
        self._connected_at = self.clock.now()
        self.backoff.reset()
        # Subscribed before the birth: the broker handles one client's packets in order, so
        # whoever sees the birth (the collector, delivering commands queued while this
        # device was away) can count on the device listening for commands.
        if self.updates is not None:  # one SUBSCRIBE: still before the birth
            client.subscribe([(self.topics.commands, 1), (self.topics.updates, 1)])
        else:
            client.subscribe(self.topics.commands, qos=1)
        client.publish(self.topics.status, self.encode(status.birth(self.manifest,
                                                                    self.clock.now())),
                       qos=1, retain=True, properties=self._properties())
        self._publish_retained(client, self.retained.on_connect())
        self._wake.set()  # whatever waited while we were away
        log.info("connected to %s:%d", self.cfg.host, self.cfg.port)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, _codes: Any,
                      _p: Any = None) -> None:
        self.connected.set()  # connected and listening for commands

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode,
                       _p: Any = None) -> None:
        if self.connected.is_set() and not self.stop_event.is_set():  # not our goodbye
            log.warning("disconnected from broker: %s", reason)
        self.connected.clear()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode,
                    _p: Any = None) -> None:
        taken = not reason.is_failure or reason.value == 0x10  # 0x10: nobody subscribed
        if self.retained.acknowledged(mid, taken):
            if not taken:
                log.error("broker rejected the reference profile: %s", reason)
            return
        if self._bulk_inflight.acked(mid, reason, self.bulk):
            return
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return
        if reason.is_failure and reason.value != 0x10:  # 0x10: no matching subscribers
            log.error("broker rejected message seq %d: %s", seq, reason)
            self.queue.reject(seq, str(reason))
            self._sent.discard(seq)
            return
        self._acks.add(seq)

    def _flush_acks(self, force: bool) -> None:
        """Delete acknowledged rows in batches (``acks``); ``force`` when nothing else waits
        for a PUBACK (whoever waits for the outbox to drain learns it at once)."""
        done = self._acks.flush(force)
        if done:
            self._sent.difference_update(done)
        if done or force:
            with self._progress:
                self._progress.notify_all()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self.updates is not None and msg.topic.startswith(self.topics.update("")):
            self.updates(msg.topic, msg.payload)
            return
        self.intake.receive(msg.topic, msg.payload)
        self._wake.set()
