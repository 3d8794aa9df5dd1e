"""PUBACKs batched into outbox deletes: one transaction per ``ACK_BATCH`` acks or 50 ms.

A crash before a flush only means those messages are published again; the collector drops
the duplicates. Used on the publisher's thread only.
"""

from __future__ import annotations

import time
from typing import Protocol

ACK_BATCH = 256
MAX_DELAY_S = 0.05


class Acker(Protocol):
    def ack_many(self, seqs: list[int]) -> None: ...


class AckBatch:
    """Seqs the broker acknowledged, waiting to be deleted from the outbox together."""

    def __init__(self, queue: Acker) -> None:
        self.queue = queue
        self._acked: list[int] = []
        self._since = 0.0

    def __bool__(self) -> bool:
        """Whether acks are waiting."""
        return bool(self._acked)

    def add(self, seq: int) -> None:
        if not self._acked:
            self._since = time.monotonic()
        self._acked.append(seq)

    def flush(self, force: bool) -> list[int]:
        """Delete the batch when it is full, old enough or ``force``; returns the seqs
        deleted (none when it waits)."""
        if self._acked and (force or len(self._acked) >= ACK_BATCH
                            or time.monotonic() - self._since > MAX_DELAY_S):
            done = self._acked
            self.queue.ack_many(done)
            self._acked = []
            return done
        return []
