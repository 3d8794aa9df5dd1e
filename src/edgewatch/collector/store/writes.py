"""The write path: items turned into rows, then written in one global order.

Idempotence
    Device -> collector messages (``summary``, ``alert``, ``cmd_result``) are keyed by
    ``(device, boot_id, seq)`` and inserted with ``INSERT ... ON CONFLICT DO NOTHING``, so a
    message delivered twice (QoS 1, a re-published backlog, two collectors) is stored once
    and exactly one ``ingest`` call -- in whatever process -- reports it as new (the rows
    of a batch go in a few multi-row statements whose ``RETURNING`` names the rows
    inserted: ``KeyedInsert``). Within a batch, rows are written in one global order
    (messages by key, then covered seqs, then devices by id) so that concurrent batches
    cannot deadlock each other.

Poison
    An item that cannot be turned into rows is named by :class:`RejectedPayload` before
    anything is written; one whose values the database refuses is found by writing each
    item alone, rolled back (:func:`_culprit`). Quarantine rows are written in the same
    transaction as the batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from edgewatch.collector.store.drivers import KeyedInsert, Row, _Driver
from edgewatch.collector.store.errors import (
    RejectedPayload,
    StoreError,
    _clean,
    _DryRun,
    _Refused,
)
from edgewatch.collector.store.records import KINDS, Item, Quarantined
from edgewatch.contracts.alert import Alert
from edgewatch.contracts.codec import REASONS
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.evidence import EvidenceChunk
from edgewatch.contracts.reference import Reference
from edgewatch.contracts.status import Status
from edgewatch.contracts.summary import Summary

log = logging.getLogger(__name__)

_INSERT_MESSAGE = KeyedInsert("messages", (
    "device", "boot_id", "seq", "kind", "fleet", "received", "window_start", "window_end",
    "historical", "alert_id", "alert_state", "payload"), key=3)
_INSERT_COVERED = "INSERT INTO covered (device, seq) VALUES (?, ?) ON CONFLICT DO NOTHING"
_INSERT_REFERENCE = KeyedInsert('"references"', (
    "device", "reference_id", "fleet", "received", "created", "model_sha256", "payload"),
    key=2)
_INSERT_QUARANTINE = (
    "INSERT INTO quarantine (received, topic, reason, detail, payload) VALUES (?, ?, ?, ?, ?)"
)
_LATEST = (
    "CASE WHEN excluded.last_seen IS NULL THEN devices.last_seen "
    "WHEN devices.last_seen IS NULL OR excluded.last_seen > devices.last_seen "
    "THEN excluded.last_seen ELSE devices.last_seen END"
)
_SEEN_DEVICE = (
    "INSERT INTO devices (device, fleet, online, last_seen) VALUES (?, ?, FALSE, ?) "
    f"ON CONFLICT (device) DO UPDATE SET fleet = excluded.fleet, last_seen = {_LATEST}"
)
_STATUS_DEVICE = (
    "INSERT INTO devices (device, fleet, online, status_time, last_seen, boot_id, manifest) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET "
    "fleet = excluded.fleet, online = excluded.online, status_time = excluded.status_time, "
    f"last_seen = {_LATEST}, boot_id = COALESCE(excluded.boot_id, devices.boot_id), "
    "manifest = CASE WHEN excluded.online THEN excluded.manifest ELSE devices.manifest END"
)


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class _Message:
    """A device -> collector message, ready to insert."""

    index: int
    device: str
    boot_id: str
    seq: int
    fleet: str
    received: float
    row: Row
    merged_seqs: tuple[int, ...]


@dataclass(frozen=True)
class _Status:
    """A status message, ready to upsert into ``devices``."""

    index: int
    device: str
    row: Row
    retained: bool = False
    """Replayed by the broker from its retained store (not a sign of life)."""


@dataclass(frozen=True)
class _Reference:
    """A reference profile, ready to insert into ``references``."""

    index: int
    device: str
    reference_id: str
    row: Row
    retained: bool = False


@dataclass(frozen=True)
class _Batch:
    """The rows of a batch; messages sorted by key, statuses and references by device."""

    messages: list[_Message]
    statuses: list[_Status]
    references: list[_Reference]

    def singles(self) -> list[tuple[int, _Batch]]:
        """One batch per item, in the order of the items."""
        out = [(m.index, _Batch([m], [], [])) for m in self.messages]
        out += [(s.index, _Batch([], [s], [])) for s in self.statuses]
        out += [(r.index, _Batch([], [], [r])) for r in self.references]
        return sorted(out, key=lambda pair: pair[0])


def _json(message: msgspec.Struct) -> str:
    """The canonical JSON text of a message (summaries: schema 2)."""
    return msgspec.json.encode(message).decode("utf-8")


def _payload(item: Item) -> str:
    """The item's message as stored: the canonical JSON the decoder wrote, else written now."""
    return item.canonical.decode("utf-8") if item.canonical else _json(item.message)


def _message(index: int, item: Item, m: Summary | Alert | CommandResult) -> _Message:
    if not m.boot_id:
        raise StoreError(f"{item.kind} without a boot_id: it has no key")
    start = end = None
    alert_id = state = None
    merged: tuple[int, ...] = ()
    if isinstance(m, Summary):
        start, end = m.window.start, m.window.end
        merged = tuple(m.merged_seqs or ())
    elif isinstance(m, Alert):
        start, end = m.window.start, m.window.end
        alert_id, state = m.id or None, m.state  # without an id, an alert stands for itself
    row = (m.device, m.boot_id, m.seq, item.kind, item.fleet, item.received, start, end,
           m.historical, alert_id, state, _payload(item))
    return _Message(index, m.device, m.boot_id, m.seq, item.fleet, item.received, row, merged)


def _status(index: int, item: Item, s: Status) -> _Status:
    online = s.state == "online"
    manifest = _json(s.manifest) if online and s.manifest is not None else None
    row = (item.device, item.fleet, online, item.received if s.time is None else s.time,
           item.received if online and not item.retained else None, s.boot_id or None,
           manifest)
    return _Status(index, item.device, row, bool(item.retained))


def _reference(index: int, item: Item, r: Reference) -> _Reference:
    row = (item.device, r.id, item.fleet, item.received, r.created, r.model_sha256,
           _payload(item))
    return _Reference(index, item.device, r.id, row, bool(item.retained))


def _prepare_one(index: int, item: Item) -> _Message | _Status | _Reference:
    if not isinstance(item, Item):
        item = Item(*item)
    kind = KINDS.get(type(item.message))
    if kind is None:
        raise StoreError(f"not a device message: {type(item.message).__name__}")
    if item.kind != kind:
        raise StoreError(f"unknown kind {item.kind!r}" if item.kind not in KINDS.values()
                         else f"a {kind} message ingested as {item.kind!r}")
    if not (isinstance(item.fleet, str) and item.fleet and isinstance(item.device, str)
            and item.device):
        raise StoreError("fleet and device must be non-empty strings")
    m = item.message
    if m.device != item.device:
        raise StoreError(f"payload device {m.device[:130]!r} does not match the topic's "
                         f"{item.device[:130]!r}")
    if isinstance(m, Status):
        return _status(index, item, m)
    if isinstance(m, Reference):
        return _reference(index, item, m)
    if isinstance(m, EvidenceChunk):  # the ingest writes chunks to files (ChunkStore)
        raise StoreError("evidence chunks are not stored in the database")
    return _message(index, item, m)


def _prepare(items: Sequence[Item]) -> _Batch:
    """Every item's rows, before anything is written (RejectedPayload names a bad item)."""
    batch = _Batch([], [], [])
    for index, item in enumerate(items):
        try:
            prepared = _prepare_one(index, item)
        except Exception as exc:  # StoreError, or a message that does not encode
            raise RejectedPayload(index, str(exc) or type(exc).__name__) from exc
        if isinstance(prepared, _Status):
            batch.statuses.append(prepared)
        elif isinstance(prepared, _Reference):
            batch.references.append(prepared)
        else:
            batch.messages.append(prepared)
    batch.messages.sort(key=lambda m: (m.device, m.boot_id, m.seq))
    batch.statuses.sort(key=lambda s: s.device)  # stable: a device's statuses stay in order
    batch.references.sort(key=lambda r: (r.device, r.reference_id))
    return batch


def _quarantine_row(q: Quarantined) -> Row:
    if q.reason not in REASONS:
        raise StoreError(f"unknown quarantine reason {q.reason!r}: expected one of "
                         f"{', '.join(REASONS)}")
    return (float(q.received), _clean(q.topic, 1024), q.reason, _clean(q.detail, 1000),
            bytes(q.payload))


def _purge_query(before: float | None) -> tuple[str, tuple[float, ...]]:
    """The statement deleting the quarantined messages received before ``before`` (every
    one when None), returning one row per message deleted."""
    sql = "DELETE FROM quarantine RETURNING id"
    params: tuple[float, ...] = ()
    if before is not None:
        if isinstance(before, bool) or not isinstance(before, (int, float)) or not (
                math.isfinite(before)):
            raise StoreError(f"'before' must be a finite time, got {before!r}")
        sql = "DELETE FROM quarantine WHERE received < ? RETURNING id"
        params = (float(before),)
    return sql, params


def _device_writes(
    new: Sequence[_Message], messages: Sequence[_Message], statuses: Sequence[_Status]
) -> tuple[list[Row], list[Row], list[Row]]:
    """(covered rows, last-seen rows, status rows), each sorted for a global lock order."""
    covered = sorted({(m.device, s) for m in new for s in m.merged_seqs})
    seen: dict[str, tuple[str, float]] = {}
    for m in messages:
        latest = seen.get(m.device, (m.fleet, m.received))[1]
        seen[m.device] = (m.fleet, max(latest, m.received))
    last_seen = [(d, fleet, t) for d, (fleet, t) in sorted(seen.items())]
    return list(covered), last_seen, [s.row for s in statuses]


# --------------------------------------------------------------------------- writing


def _write(driver: _Driver, batch: _Batch, n: int, quarantine: Sequence[Row]) -> list[bool]:
    """Insert a prepared batch (in the transaction of the caller); one result per item.

    The order of the tables, and of the rows within each, is the same in every batch
    (messages by key, covered seqs, references, devices by id) so that concurrent
    batches cannot deadlock each other."""
    results = [True] * n
    batch = _admitted(driver, batch, results)
    messages = batch.messages
    inserted = driver.insert_keyed(_INSERT_MESSAGE, [m.row for m in messages])
    for m, new in zip(messages, inserted):
        results[m.index] = new
    fresh = [m for m, new in zip(messages, inserted) if new]
    covered, seen, status_rows = _device_writes(fresh, messages, batch.statuses)
    driver.execute_many(_INSERT_COVERED, covered)
    refs = batch.references
    for r, new in zip(refs, driver.insert_keyed(_INSERT_REFERENCE, [r.row for r in refs])):
        results[r.index] = new
    driver.execute_many(_SEEN_DEVICE, seen)
    driver.execute_many(_STATUS_DEVICE, status_rows)
    driver.execute_many(_INSERT_QUARANTINE, quarantine)
    return results


def _admitted(driver: _Driver, batch: _Batch, results: list[bool]) -> _Batch:
    """The batch without the retained statuses and references of decommissioned devices
    (the broker replaying what the device left behind: not stored, reported as not new);
    a live message of a decommissioned device re-admits it (logged)."""
    devices = sorted({m.device for m in batch.messages} | {s.device for s in batch.statuses}
                     | {r.device for r in batch.references})
    if not devices:
        return batch
    marks = ", ".join("?" * len(devices))
    gone = {str(r[0]) for r in driver.query(
        f"SELECT device FROM decommissioned WHERE device IN ({marks})", devices)}
    if not gone:
        return batch
    live = ({m.device for m in batch.messages} | {s.device for s in batch.statuses
                                                   if not s.retained}
            | {r.device for r in batch.references if not r.retained}) & gone
    for device in sorted(live):
        driver.query("DELETE FROM decommissioned WHERE device = ?", (device,))
        log.warning("device %.130r was decommissioned and is back: re-admitted", device)
    skip = gone - live
    if not skip:
        return batch
    replayed: list[_Status | _Reference] = [*batch.statuses, *batch.references]
    for one in replayed:
        if one.device in skip:
            results[one.index] = False
    return _Batch(batch.messages, [s for s in batch.statuses if s.device not in skip],
                  [r for r in batch.references if r.device not in skip])


def _culprit(run: Callable[[Callable[[], None]], None], driver: _Driver, batch: _Batch,
             n: int) -> tuple[int, str] | None:
    """(index, why) of the first item whose values the database refuses when written
    alone; each trial runs in a write transaction of ``run`` and is rolled back. None when
    every item alone is accepted."""
    for index, one in batch.singles():
        def trial(one: _Batch = one) -> None:
            _write(driver, one, n, ())
            raise _DryRun

        try:
            run(trial)
        except _DryRun:
            continue
        except _Refused as exc:
            return index, exc.detail
    return None
