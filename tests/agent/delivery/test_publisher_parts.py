"""The publisher's parts on their own: reconnect backoff and drain rate (``pacing``),
PUBACKs batched into deletes (``acks``), commands received and answered (``intake``)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery import acks, pacing
from edgewatch.agent.delivery.acks import ACK_BATCH, AckBatch
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
