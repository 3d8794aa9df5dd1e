"""The publisher's parts on their own: reconnect backoff and drain rate (``pacing``),
PUBACKs batched into deletes (``acks``), commands received and answered (``intake``),
evidence chunks in flight (``bulk``)."""

from __future__ import annotations

import json
import random
import time
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery import acks, pacing
from edgewatch.agent.delivery.acks import ACK_BATCH, AckBatch
from edgewatch.agent.delivery.bulk import BULK_IN_FLIGHT, BulkInFlight
from edgewatch.agent.delivery.intake import CommandIntake
from edgewatch.agent.delivery.pacing import Backoff, TokenBucket
from edgewatch.contracts import CommandResult


class FakeTime:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t


# --------------------------------------------------------------------------- pacing


def test_backoff_doubles_its_cap_up_to_the_maximum_with_full_jitter() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(7))
    caps = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    waits = [backoff.next() for _ in caps]
    assert all(0.5 <= w <= cap for w, cap in zip(waits, caps))
    many = [Backoff(0.5, 8.0, random.Random(seed)) for seed in range(200)]
    for b in many:
        b.attempt = 10
    spread = [b.next() for b in many]
    assert min(spread) < 2.0 and max(spread) > 6.5  # jitter over the whole range
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next() == 0.5


def test_token_bucket_without_a_rate_never_waits() -> None:
    bucket = TokenBucket(0.0)
    assert all(bucket.take() for _ in range(10_000))


def test_token_bucket_starts_empty_refills_and_caps_bursts_at_its_rate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeTime()
    monkeypatch.setattr(pacing, "time", clock)
    bucket = TokenBucket(4.0)
    assert not bucket.take()
    clock.t += 0.5  # two tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.t += 3600.0  # a long idle time: a burst of at most `rate`
    assert sum(bucket.take() for _ in range(10)) == 4


# --------------------------------------------------------------------------- acks


class Acker:
    def __init__(self) -> None:
        self.deleted: list[list[int]] = []

    def ack_many(self, seqs: list[int]) -> None:
        self.deleted.append(list(seqs))


def test_acks_wait_for_a_full_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeTime()
    monkeypatch.setattr(acks, "time", clock)
    queue = Acker()
    batch = AckBatch(queue)
    assert not batch and batch.flush(force=False) == []
    for seq in range(1, ACK_BATCH):
        batch.add(seq)
    assert batch and batch.flush(force=False) == [] and queue.deleted == []
    batch.add(ACK_BATCH)
    assert batch.flush(force=False) == list(range(1, ACK_BATCH + 1))
    assert queue.deleted == [list(range(1, ACK_BATCH + 1))] and not batch


def test_acks_leave_after_their_delay_or_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeTime()
    monkeypatch.setattr(acks, "time", clock)
    queue = Acker()
    batch = AckBatch(queue)
    batch.add(7)
    clock.t += acks.MAX_DELAY_S / 2
    batch.add(8)
    assert batch.flush(force=False) == []
    clock.t += acks.MAX_DELAY_S  # counted from the first ack of the batch
    assert batch.flush(force=False) == [7, 8]
    batch.add(9)
    assert batch.flush(force=True) == [9]
    assert queue.deleted == [[7, 8], [9]]


def test_ack_batch_uses_the_real_clock() -> None:
    batch = AckBatch(Acker())
    batch.add(1)
    time.sleep(acks.MAX_DELAY_S * 1.5)
    assert batch.flush(force=False) == [1]


# --------------------------------------------------------------------------- intake


class ResultQueue:
    def __init__(self) -> None:
        self.put_calls: list[tuple[str, dict[str, Any]]] = []

    def put(self, kind: str, payload: dict[str, Any], *, priority: int | None = None) -> int:
        self.put_calls.append((kind, payload))
        return len(self.put_calls)


def test_without_a_handler_every_command_is_refused_and_answered() -> None:
    queue = ResultQueue()
    CommandIntake(queue, None).receive("edgewatch/v1/f1/cam-1/cmd/ping", b"{}")
    assert queue.put_calls == [("cmd_result", {
        "schema": "edgewatch.cmd_result/1", "command": "ping", "ok": False,
        "error": "this agent accepts no commands"})]


def test_a_command_goes_to_the_handler_named_by_the_topic() -> None:
    queue = ResultQueue()
    router = CommandRouter()
    router.register("echo", lambda args: {"alert": args["text"]})
    intake = CommandIntake(queue, router)
    intake.receive("edgewatch/v1/f1/cam-1/cmd/ping", json.dumps({"id": "c1"}).encode())
    intake.receive("edgewatch/v1/f1/cam-1/cmd/echo", b'{"text": "hi"}')
    intake.receive("edgewatch/v1/f1/cam-1/cmd/reboot", b"{}")
    results = [CommandResult(**{k: v for k, v in p.items() if k != "schema"})
               for _, p in queue.put_calls]
    assert [(r.command, r.ok) for r in results] == [("ping", True), ("echo", True),
                                                    ("reboot", False)]
    assert results[0].id == "c1" and results[0].pong
    assert results[1].alert == "hi"
    assert results[2].error is not None and "unknown command 'reboot'" in results[2].error


# --------------------------------------------------------------------------- bulk


class Chunks:
    """A bulk source handing out numbered chunks and recording what it is told."""

    def __init__(self, n: int) -> None:
        self.queue = list(range(n))
        self.results: list[tuple[int, bool]] = []
        self.resets = 0

    def next(self) -> int | None:
        return self.queue.pop(0) if self.queue else None

    def acked(self, chunk: int, ok: bool) -> None:
        self.results.append((chunk, ok))

    def reset(self) -> int:
        self.resets += 1
        dropped, self.queue = len(self.queue), []
        return dropped


class Client:
    """Records publishes; answers each with a new mid and ``rc``."""

    def __init__(self, rc: int = mqtt.MQTT_ERR_SUCCESS) -> None:
        self.rc = rc
        self.sent: list[tuple[str, bytes, int]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0,
                properties: Any = None) -> SimpleNamespace:
        self.sent.append((topic, payload, qos))
        return SimpleNamespace(rc=self.rc, mid=100 + len(self.sent))


def puback(code: int) -> ReasonCode:
    return ReasonCode(PacketTypes.PUBACK, identifier=code)


def test_bulk_keeps_at_most_its_limit_in_flight_until_acknowledged() -> None:
    source, client, bulk = Chunks(5), Client(), BulkInFlight()
    for _ in range(BULK_IN_FLIGHT + 2):
        bulk.publish(client, source, "t/evidence", lambda c: f"chunk {c}".encode(), None)
    assert len(bulk) == BULK_IN_FLIGHT == len(client.sent)
    assert client.sent[0] == ("t/evidence", b"chunk 0", 1)
    assert bulk.acked(101, puback(0), source)
    assert not bulk.acked(101, puback(0), source)  # each PUBACK once
    assert not bulk.acked(7, puback(0), source)  # not a bulk message: the outbox's
    bulk.publish(client, source, "t/evidence", lambda c: b"", None)
    assert len(bulk) == BULK_IN_FLIGHT and len(client.sent) == BULK_IN_FLIGHT + 1
    assert bulk.acked(102, puback(0x10), source)  # no matching subscribers: arrived
    assert bulk.acked(103, puback(0x87), source)  # not authorised: lost
    assert source.results == [(0, True), (1, True), (2, False)]


def test_a_refused_publish_goes_back_and_a_new_connection_resets() -> None:
    source, bulk = Chunks(4), BulkInFlight()
    bulk.publish(Client(rc=mqtt.MQTT_ERR_NO_CONN), source, "t", lambda c: b"x", None)
    assert len(bulk) == 0 and source.results == [(0, False)]
    bulk.publish(Client(), source, "t", lambda c: b"x", None)
    assert len(bulk) == 1
    bulk.reset(source)
    assert len(bulk) == 0 and source.resets == 1 and source.queue == []
    assert not bulk.acked(101, puback(0), source)  # from the old connection
    bulk.reset(None)  # no source: nothing to tell
    assert len(bulk) == 0
