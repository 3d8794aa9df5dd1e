"""The outbox's fallback while the disk refuses writes: messages and acks kept in memory.

A full disk, a read-only database, an I/O error or a lock held too long must not stop the
agent: ``put`` then keeps the message here (seq already assigned), ``degraded`` says why,
and the next ``put``/``retry`` writes the list to disk once writes work again. Beyond
``limit`` messages the lowest priority, oldest ones are dropped (the outbox counts them
under ``dropped``). ``pending`` serves these rows too, so the publisher can still deliver
while the disk is out. Messages only in memory are lost if the process dies; their seqs
were never committed and may be issued again after the restart (the collector never saw
them). Any other SQLite error raises ``OutboxError``.

Not thread-safe on its own: the ``Outbox`` holds its lock around every use.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection
from pathlib import Path

from edgewatch.agent.delivery.outbox.database import disk_condition
from edgewatch.agent.delivery.outbox.rows import Entry, OutboxRow, eviction_key
from edgewatch.errors import OutboxError

log = logging.getLogger(__name__)


class MemoryFallback:
    """Messages not yet committed, acks not yet deleted, and why the disk refuses writes."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.entries: list[Entry] = []
        """Messages with their seqs, oldest first, waiting to be written to disk."""
        self.acks: set[int] = set()
        """Acknowledged, but the DELETE has not committed yet."""
        self.degraded: str | None = None
        """Why writes currently fail, or None when the disk takes them."""

    def write_failed(self, exc: sqlite3.Error) -> None:
        """Enter degraded mode for a disk condition; raise OutboxError for anything else."""
        reason = disk_condition(exc)
        if reason is None:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        if self.degraded is None:
            log.warning("outbox degraded, keeping messages in memory: %s", reason)
        self.degraded = reason

    def recovered(self) -> None:
        """Writes work again (everything kept here is on disk now)."""
        if self.degraded is not None:
            log.info("outbox writes work again (was: %s)", self.degraded)
        self.degraded = None

    def bound(self) -> list[Entry]:
        """Drop the lowest-priority, oldest entries beyond ``limit``; returns them."""
        dropped = []
        while len(self.entries) > self.limit:
            victim = min(self.entries, key=lambda e: eviction_key(e.kind, e.priority, e.seq))
            self.entries.remove(victim)
            dropped.append(victim)
            log.warning("outbox memory full: dropped %s seq %d", victim.kind, victim.seq)
        return dropped

    def take(self, seq: int) -> Entry | None:
        """Remove and return the entry with this seq, if memory holds it."""
        for entry in self.entries:
            if entry.seq == seq:
                self.entries.remove(entry)
                return entry
        return None

    def remove(self, seqs: Collection[int]) -> set[int]:
        """Remove the entries with these seqs; returns the seqs memory held."""
        found = [e for e in self.entries if e.seq in seqs]
        for entry in found:
            self.entries.remove(entry)
        return {e.seq for e in found}

    def rows(self, skip: Collection[int]) -> list[OutboxRow]:
        """The entries as rows, but for the seqs in ``skip``."""
        return [e.row() for e in self.entries if e.seq not in skip]
