"""What the outbox holds and reports: rows, entries not yet on disk, stats, cap reports."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any

PRIORITY = {"alert": 2, "cmd_result": 1, "status": 1, "summary": 0}
"""The conventional priority of each kind; callers pass the priority explicitly."""
TRANSPORT_FIELDS = ("device", "boot_id", "seq", "merged_seqs", "loss")
"""Payload fields owned by the outbox; ``merge`` never sees them."""
MergeFn = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
WireFn = Callable[[dict[str, Any]], bytes]
"""Encodes a stored payload the way the publisher sends it from a backlog (flagged
``historical``), so a drain sends stored bytes instead of encoding each row."""
BATCH = 32
"""Rows per transaction when the outbox writes, evicts or merges many."""


@dataclasses.dataclass(frozen=True)
class OutboxRow:
    """One queued message as the publisher sees it."""

    seq: int
    kind: str
    priority: int
    created: float
    body: str
    """The payload as stored: JSON text (a contract message as builtins: summaries in schema
    2); the publisher encodes it in ``mqtt.encoding``. Empty when ``pending`` hands out the
    row with its ``wire`` payload (which holds the same message)."""
    window_start: float | None = None
    window_end: float | None = None
    wire: bytes | None = None
    """The payload already encoded as sent from a backlog (``WireFn``), or None: the
    publisher encodes ``body``."""

    @functools.cached_property
    def payload(self) -> dict[str, Any]:
        """The payload decoded (only when someone asks: the publisher reads ``body``)."""
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


@dataclasses.dataclass(frozen=True)
class OutboxStats:
    """What the outbox holds and how much disk it takes."""

    pending: int
    """Messages not yet acknowledged, on disk and in memory."""
    bytes_on_disk: int
    """page_count * page_size of the database plus the WAL file's size."""
    oldest_created: float | None
    in_memory: int
    """Messages kept in memory because the disk does not take writes."""
    degraded: str | None


@dataclasses.dataclass(frozen=True)
class CapReport:
    """What one ``enforce_caps`` run did (counts are original messages)."""

    compacted: int
    evicted: dict[str, int]
    bytes_before: int = 0
    bytes_after: int = 0


@dataclasses.dataclass
class Entry:
    """A message with its seq, not yet committed to disk."""

    seq: int
    kind: str
    priority: int
    created: float
    window_start: float | None
    window_end: float | None
    payload: dict[str, Any]
    attach_loss: bool
    wire_bytes: int = 0
    """The most bytes its wire payload (``WireFn``) may take, counted in the transaction
    budget; 0: stored without one (no ``WireFn``, or the row would not fit)."""

    def row(self) -> OutboxRow:
        return OutboxRow(self.seq, self.kind, self.priority, self.created,
                         dumps(self.payload), self.window_start, self.window_end)


def dumps(payload: dict[str, Any]) -> str:
    """A payload as stored: compact, strict JSON."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def wire_bound(nbytes: int) -> int:
    """The most bytes ``nbytes`` of JSON add to a wire payload: MessagePack spends at most
    9 bytes on what JSON writes in 3 (``0.0``), and deflate adds a header, a dictionary id,
    a checksum and 5 bytes per stored block."""
    return 3 * nbytes + 128


def drain_key(row: OutboxRow) -> tuple[int, int]:
    """Drain order: higher priority first, then by seq."""
    return (-row.priority, row.seq)


def eviction_key(kind: str, priority: int, seq: int) -> tuple[bool, int, int]:
    """Eviction order: lowest priority, oldest first, alerts last."""
    return (kind == "alert", priority, seq)
