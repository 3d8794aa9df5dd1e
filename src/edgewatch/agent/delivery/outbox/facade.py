"""The ``Outbox``: one durable, bounded, thread-safe queue composed of its parts.

Delivery contract
    ``put`` gives every message the next per-device sequence number and commits it with
    ``synchronous=FULL`` before returning, so a message ``put`` returned for survives a
    crash or power loss. ``pending`` hands rows to the publisher (higher priority first,
    then by seq); ``ack`` deletes a row after the broker's PUBACK. Delivery is therefore
    at-least-once: the collector deduplicates on ``(device, seq)``. Seqs never go back and
    are never reused (``queue``). With ``wire``, each row is stored with its payload encoded
    as a backlog sends it (``queue``; when that fits one transaction), so a drain does not
    encode. Acknowledged rows are deleted without waiting for the disk (``synchronous=
    NORMAL`` for that transaction): a delete a power cut undoes only means that message is
    published again, and the next durable commit syncs it too.

The parts: ``database`` (the SQLite file), ``queue`` (the messages table and the seq),
``memory`` (the fallback while the disk refuses writes), ``loss`` (what was merged or
lost, reported to the next message), ``caps`` and ``compaction`` (bounded disk).

Threads
    One connection (``check_same_thread=False``) guarded by one lock held for each whole
    public call: the monitor thread's ``put`` and the publisher's ``pending``/``ack`` simply
    take turns. One process should own a file at a time (the seq counter lives in it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import msgspec

from edgewatch.agent.delivery.outbox.caps import CapEnforcer
from edgewatch.agent.delivery.outbox.compaction import Compactor
from edgewatch.agent.delivery.outbox.database import (
    DELETE_PAGES,
    MIN_MAX_BYTES,
    TXN_FIXED_PAGES,
    OutboxDatabase,
)
from edgewatch.agent.delivery.outbox.loss import (
    LossLedger,
    add_counts,
    counters,
    loss_report,
    originals,
)
from edgewatch.agent.delivery.outbox.memory import MemoryFallback
from edgewatch.agent.delivery.outbox.queue import DiskQueue
from edgewatch.agent.delivery.outbox.rows import (
    BATCH,
    PRIORITY,
    CapReport,
    Entry,
    MergeFn,
    OutboxRow,
    OutboxStats,
    WireFn,
    drain_key,
    dumps,
    wire_bound,
)
from edgewatch.clock import Clock
from edgewatch.errors import OutboxError

log = logging.getLogger(__name__)


class Outbox:
    """Durable, bounded, thread-safe queue of outgoing messages (see the module docstring)."""

    def __init__(self, path: str | Path, *, device: str, boot_id: str, clock: Clock,
                 max_bytes: int, max_age_s: float, merge: MergeFn | None,
                 memory_limit: int = 1000, auto_caps: bool = True,
                 wire: WireFn | None = None) -> None:
        if max_bytes < MIN_MAX_BYTES:
            raise OutboxError(f"outbox max_bytes must be at least {MIN_MAX_BYTES}")
        self.path = Path(path)
        self.device, self.boot_id = device, boot_id
        self.max_bytes = max_bytes
        self._clock, self._auto_caps = clock, auto_caps
        self._lock = threading.RLock()
        self._memory = MemoryFallback(self.path, memory_limit)
        try:
            self._database = OutboxDatabase(self.path, max_bytes)
            try:
                self._database.create_schema()
            except sqlite3.Error as exc:  # an existing outbox on a full or read-only disk
                if not self._database.has_schema():
                    raise
                self._memory.write_failed(exc)
            self.db = self._database.db
            self._wire = wire
            self._queue = DiskQueue(self.db, wire, self._database.has_wire())
            self._last_seq = self._queue.last_seq()
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc
        self._loss = LossLedger(self._database.conn)
        self._caps = CapEnforcer(self._database, self._loss,
                                 Compactor(self._database, self._loss, merge), clock=clock,
                                 max_age_s=max_age_s, on_disk_error=self._memory.write_failed)

    @property
    def degraded(self) -> str | None:
        """Why writes currently fail, or None when the disk takes them."""
        return self._memory.degraded

    @property
    def max_age_s(self) -> float:
        """Status and summary rows older than this expire (``<= 0``: none do)."""
        return self._caps.max_age_s

    @max_age_s.setter
    def max_age_s(self, value: float) -> None:
        self._caps.max_age_s = value

    @property
    def last_seq(self) -> int:
        """The highest seq issued so far."""
        return self._last_seq

    def close(self) -> None:
        """Write what memory still holds if the disk allows, then close the database."""
        with self._lock:
            if self._memory.entries:
                self._flush()
            if self._memory.entries:
                log.error("outbox closed with %d messages only in memory; they are lost",
                          len(self._memory.entries))
            self._database.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- put, and writing what memory holds ------------------------------------------------

    def put(self, kind: str, payload: dict[str, Any], *, priority: int | None = None,
            window_start: float | None = None, window_end: float | None = None,
            attach_loss: bool = False) -> int:
        """Queue a message and return its seq; committed to disk unless ``degraded``.

        ``priority`` defaults to the kind's (``PRIORITY``). With ``attach_loss`` the pending
        loss report is moved into ``payload["loss"]`` in
        the transaction that commits the message (a crash cannot lose the report).
        """
        entry = self._entry(kind, payload, PRIORITY.get(kind, 0) if priority is None else priority,
                            window_start, window_end, attach_loss)
        with self._lock:
            self._last_seq += 1
            entry.seq = entry.payload["seq"] = self._last_seq
            self._memory.entries.append(entry)
            try:
                self._flush()
            except OutboxError:
                with contextlib.suppress(ValueError):
                    self._memory.entries.remove(entry)
                raise
            for victim in self._memory.bound():
                self._loss.note(f"dropped.{victim.kind}")
            if self._auto_caps and self.degraded is None and self._caps.needed():
                self.enforce_caps()
            return entry.seq

    def _entry(self, kind: str, payload: dict[str, Any], priority: int,
               window_start: float | None, window_end: float | None,
               attach_loss: bool) -> Entry:
        """Validate and copy the payload, adding the transport fields (seq comes later)."""
        if kind not in PRIORITY:
            raise OutboxError(f"unknown outbox message kind {kind!r}")
        try:
            body: dict[str, Any] = json.loads(dumps(payload))
        except (TypeError, ValueError) as exc:
            raise OutboxError(f"{kind} payload is not strict JSON: {exc}") from exc
        if "merged_seqs" in body:
            raise OutboxError("payload field 'merged_seqs' belongs to the outbox")
        try:  # a loss report the caller took with take_loss_report(): summed and kept
            list(counters(body.get("loss")))
        except (AttributeError, TypeError, ValueError) as exc:
            raise OutboxError(f"payload field 'loss' is not a loss report: {exc}") from exc
        body.update(device=self.device, boot_id=self.boot_id, seq=0)
        entry = Entry(0, kind, priority, self._clock.now(), window_start, window_end, body,
                      attach_loss)
        if self._wire is not None:
            entry.wire_bytes = self._wire_bytes(entry)
        return entry

    def _wire_bytes(self, entry: Entry) -> int:
        """The budget of an entry's wire payload: its size now, plus room for the loss
        report ``put`` may attach; 0 when the row would not fit one transaction with it."""
        assert self._wire is not None
        try:
            size = len(self._wire(entry.payload)) + 16  # the seq is still 0
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            log.warning("outbox: a %s payload does not encode (%s): the publisher will "
                        "try again", entry.kind, exc)
            return 0
        size += wire_bound(512) if entry.attach_loss else 0
        return size if self._database.fits(self._entry_bytes(entry) + size) else 0

    def retry(self) -> bool:
        """Try to write the memory list and pending acks to disk; True when nothing is left."""
        with self._lock:
            self._flush()
            return self.degraded is None

    def _flush(self) -> None:
        """Commit memory entries (oldest first) with the side state, batch by batch.

        A batch is as many entries as one transaction's WAL budget takes. When SQLite
        refuses a write because the page budget is spent, the caps make room (compaction,
        then eviction) and the batch is tried again; an entry too large for the cap at all
        is evicted (counted and logged)."""
        memory = self._memory
        while memory.entries or memory.acks or self._loss.unsaved:
            self._evict_oversized()
            batch, acks = self._next_batch()
            try:
                with self._database.txn():
                    self._queue.delete(acks)
                    self._loss.persist_unsaved()
                    for entry in batch:
                        loss = {"loss": self._loss.take_disk()} if entry.attach_loss else {}
                        self._queue.insert(entry, {**entry.payload, **loss})
            except sqlite3.Error as exc:
                if batch and self._database.over_budget(exc):
                    self._make_room(batch)
                    continue
                memory.write_failed(exc)
                return
            del memory.entries[:len(batch)]
            memory.acks.difference_update(acks)
            self._loss.unsaved.clear()
        memory.recovered()

    def _entry_bytes(self, entry: Entry) -> int:
        """The stored size of an entry at most (an attached loss report adds a little, and
        so does its wire payload, ``wire_bytes``)."""
        return len(dumps(entry.payload)) + (512 if entry.attach_loss else 0) + entry.wire_bytes

    def _next_batch(self) -> tuple[list[Entry], list[int]]:
        """The entries and acks the next flush transaction takes (its WAL budget)."""
        database = self._database
        budget = database.budget()
        acks = [s for s in sorted(self._memory.acks) if budget.take(DELETE_PAGES)]
        batch = []
        for entry in self._memory.entries[:BATCH]:
            if not budget.take(database.row_pages(self._entry_bytes(entry))):
                break
            batch.append(entry)
        return batch, acks

    def _evict_oversized(self) -> None:
        """Evict the entries too large for one transaction under the cap: never storable."""
        for entry in list(self._memory.entries):
            size = self._entry_bytes(entry)
            if not self._database.fits(size):
                self._memory.entries.remove(entry)
                self._loss.note(f"evicted.{entry.kind}")
                log.warning("outbox: evicted 1 row holding 1 message (%s: 1; seqs %d..%d), "
                            "%d bytes freed: larger than the size cap (%d bytes) can hold",
                            entry.kind, entry.seq, entry.seq, size, self.max_bytes)

    def _make_room(self, batch: list[Entry]) -> None:
        """The page budget refused ``batch``: make room for it, or, when nothing is left to
        compact or evict before it, evict its first entry (it cannot be stored)."""
        database = self._database
        first = batch[0]
        need = sum(database.row_pages(self._entry_bytes(e)) for e in batch)
        before = database.live_bytes()
        self._caps.enforce(need, spare_alerts=first.kind != "alert")
        if self.degraded is not None or database.live_bytes() < before:
            return
        self._memory.entries.remove(first)
        self._loss.note(f"evicted.{first.kind}")
        log.warning("outbox: evicted 1 row holding 1 message (%s: 1; seqs %d..%d), 0 bytes "
                    "freed: the size cap (%d bytes) is full of messages that go before it",
                    first.kind, first.seq, first.seq, self.max_bytes)

    # -- the publisher's side -------------------------------------------------------------

    def pending(self, limit: int, exclude: Collection[int] = ()) -> list[OutboxRow]:
        """Up to ``limit`` unacknowledged rows, higher priority first, then by seq.

        ``exclude``: seqs the caller already holds (published, PUBACK not yet processed)."""
        with self._lock:
            skip = sorted(set(exclude) | self._memory.acks)
            try:
                disk = self._queue.pending(limit, skip, self._memory.acks)
            except (sqlite3.Error, ValueError) as exc:
                raise OutboxError(f"outbox {self.path}: cannot read pending rows: {exc}") from exc
            memory = self._memory.rows(skip)
        return sorted(disk + memory, key=drain_key)[:limit]

    def ack(self, seq: int) -> None:
        """Forget a delivered message; acknowledging an unknown or acked seq does nothing."""
        self.ack_many([seq])

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Forget several delivered messages in one transaction (one fsync)."""
        with self._lock:
            todo = set(seqs)
            todo -= self._memory.remove(todo)
            left = sorted(todo)
            step = max(1, (self._database.txn_pages - TXN_FIXED_PAGES) // DELETE_PAGES)
            while left:  # in transactions within the WAL budget
                try:
                    with self._database.txn(durable=False):
                        self._queue.delete(left[:step])
                except sqlite3.Error as exc:
                    self._memory.write_failed(exc)
                    self._memory.acks.update(left)
                    return
                del left[:step]

    def reject(self, seq: int, reason: str) -> None:
        """Drop a message the broker refused for good; it counts under ``rejected``."""
        with self._lock:
            log.error("outbox: the broker rejected seq %d (%s); dropping it", seq, reason)
            entry = self._memory.take(seq)
            if entry is not None:
                self._loss.note(f"rejected.{entry.kind}")
                return
            try:
                row = self._queue.find(seq)
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            if row is None or seq in self._memory.acks:
                return
            try:
                with self._database.txn():
                    self._loss.delete_rows([row], "rejected")
            except sqlite3.Error as exc:
                self._memory.write_failed(exc)
                self._memory.acks.add(seq)
                n, carried = originals(row[2])
                self._loss.note(f"rejected.{row[1]}", n, carried)

    def stats(self) -> OutboxStats:
        """Pending count, bytes on disk, oldest message, memory use and degradation."""
        with self._lock:
            try:
                # acknowledged but not yet deleted from disk: not pending
                count, oldest = self._queue.count(sorted(self._memory.acks))
                size = self._database.disk_bytes()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            entries = self._memory.entries
            created = [oldest] if oldest is not None else []
            created += [e.created for e in entries]
            return OutboxStats(count + len(entries), size,
                               min(created) if created else None, len(entries),
                               self.degraded)

    # -- loss and caps ----------------------------------------------------------------------

    def take_loss_report(self) -> dict[str, Any]:
        """Compacted, evicted and dropped message counts since the last report; resets them.

        ``{"compacted": n, "evicted": {kind: n}, "dropped": {kind: n}, "rejected": {kind:
        n}}``: compacted messages ride inside an earlier row (``merged_seqs``); evicted (disk
        caps), dropped (memory overflow) and rejected (refused by the broker) ones are
        lost. If the disk refuses the reset, its counters stay for a later report and only
        the memory counters are returned.
        """
        with self._lock:
            report = loss_report(self._loss.unsaved.items())
            try:
                with self._database.txn():
                    report = add_counts(report, self._loss.take_disk())
            except sqlite3.Error as exc:
                self._memory.write_failed(exc)
            self._loss.unsaved.clear()
            return report

    def enforce_caps(self) -> CapReport:
        """Age eviction, then compaction, then eviction by priority; then shrink the file.

        A disk condition stops the run early (and sets ``degraded``); what was committed
        before stays committed and counted.
        """
        with self._lock:
            return self._caps.enforce()
