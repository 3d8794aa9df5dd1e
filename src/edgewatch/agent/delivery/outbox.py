"""The agent's durable store-and-forward queue: one SQLite file in WAL mode, via sqlite-utils.

Delivery contract
    ``put`` gives every message the next per-device sequence number and commits it with
    ``synchronous=FULL`` before returning, so a message ``put`` returned for survives a
    crash or power loss. ``pending`` hands rows to the publisher (higher priority first,
    then by seq); ``ack`` deletes a row after the broker's PUBACK. Delivery is therefore
    at-least-once: the collector deduplicates on ``(device, seq)``. Seqs never go back and
    are never reused: ``meta.last_seq`` keeps the highest seq ever committed, even after
    its row is acknowledged, evicted or compacted away.

Bounded disk (``enforce_caps``; ``put`` runs it when a cap is exceeded, and to give back
the pages acknowledged rows freed once they add up to the WAL budget)
    1. Age: ``status`` and ``summary`` rows older than ``max_age_s`` (by ``created``) are
       evicted (``max_age_s <= 0``: no age cap). They are not compacted first: compaction
       keeps the oldest row's ``created`` and window, so it cannot make stale data young
       again. Alerts never expire.
    2. Bytes: when the file plus its WAL exceed ``max_bytes``, summaries are compacted
       until the live pages are under the low-water mark (``max_bytes`` minus twice the
       WAL budget, the budget being ``max_bytes/8`` clamped to 16 KiB..4 MiB; the gap is
       room for the WAL and for the puts before the next run). Consecutive summaries
       (adjacent in seq among the summaries, same ``reference_id`` and ``boot_id``) are
       merged pairwise with the injected ``merge``, oldest first, pass after pass, so old
       history gets coarser before recent history does. The merged row keeps the first
       row's seq and ``created``, spans both windows and lists every original seq in
       ``merged_seqs``.
    3. Still too big: eviction, lowest priority first, oldest first, alerts last.
    Then ``incremental_vacuum`` and a TRUNCATE checkpoint give the freed pages back, so the
    file shrinks. The counts of compacted (folded into an earlier row, not lost) and
    evicted (lost) original messages accumulate in ``meta`` in the transaction that
    deletes the rows, and ``take_loss_report`` (or ``put(..., attach_loss=True)``, atomic
    with the insert) hands them to the next message; an evicted row's own loss report
    goes back to the counters. Nothing is lost silently.

Failing disk
    A full disk, a read-only database, an I/O error or a lock held too long must not stop
    the agent: ``put`` then keeps the message in a bounded memory list (seq already
    assigned), sets ``degraded`` to the reason, and the next ``put``/``retry`` writes the
    list to disk once writes work again. Beyond ``memory_limit`` messages the lowest
    priority, oldest ones are dropped and counted under ``dropped``. ``pending`` serves
    memory rows too, so the publisher can still deliver while the disk is out. Messages
    only in memory are lost if the process dies; their seqs were never committed and may
    be issued again after the restart (the collector never saw them). Any other SQLite
    error raises ``OutboxError``.

Threads
    One connection (``check_same_thread=False``) guarded by one lock held for each whole
    public call: the monitor thread's ``put`` and the publisher's ``pending``/``ack`` simply
    take turns. One process should own a file at a time (the seq counter lives in it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from edgewatch.clock import Clock
from edgewatch.errors import OutboxError

log = logging.getLogger(__name__)

PRIORITY = {"alert": 2, "cmd_result": 1, "status": 1, "summary": 0}
"""The conventional priority of each kind; callers pass the priority explicitly."""
TRANSPORT_FIELDS = ("device", "boot_id", "seq", "merged_seqs", "loss")
"""Payload fields owned by the outbox; ``merge`` never sees them."""
MergeFn = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]

_BATCH = 32
_BUSY_TIMEOUT_MS = 5000
_MIN_MAX_BYTES = 96 * 1024  # the schema alone takes 7 pages
_MAX_WAL_BUDGET = 4 * 1024 * 1024
_DISK_CONDITIONS = {  # SQLite primary result codes that mean "writes do not work now"
    5: "database is busy", 6: "database is locked", 8: "database is read-only",
    10: "disk I/O error", 13: "disk is full", 14: "cannot open database file",
}
_DISK_MESSAGES = ("full", "readonly", "read-only", "disk i/o", "locked", "unable to open")
_DDL = (
    """CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, priority INTEGER NOT NULL,
        created REAL NOT NULL, window_start REAL, window_end REAL, payload TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS messages_drain ON messages (priority DESC, seq)",
    "CREATE INDEX IF NOT EXISTS messages_created ON messages (created)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0), ('schema', 1)",
)
_COLUMNS = "seq, kind, priority, created, window_start, window_end, payload"
_LOSS_GROUPS = ("evicted", "dropped", "rejected")
_LOSS_KEYS = "key = 'compacted' OR " + " OR ".join(f"key LIKE '{g}.%'" for g in _LOSS_GROUPS)


@dataclasses.dataclass(frozen=True)
class OutboxRow:
    """One queued message as the publisher sees it."""

    seq: int
    kind: str
    priority: int
    created: float
    body: str
    """The payload as stored: JSON text (a contract message as builtins: summaries in schema
    2); the publisher encodes it in ``mqtt.encoding``."""
    window_start: float | None = None
    window_end: float | None = None

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
class _Entry:
    """A message with its seq, not yet committed to disk."""

    seq: int
    kind: str
    priority: int
    created: float
    window_start: float | None
    window_end: float | None
    payload: dict[str, Any]
    attach_loss: bool

    def row(self) -> OutboxRow:
        return OutboxRow(self.seq, self.kind, self.priority, self.created,
                         _dumps(self.payload), self.window_start, self.window_end)


def _disk_condition(exc: sqlite3.Error) -> str | None:
    """The reason when ``exc`` means the disk does not take writes now, else None."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        reason = _DISK_CONDITIONS.get(code & 0xFF)
        return f"{reason} ({exc})" if reason else None
    text = str(exc).lower()
    return f"write failed ({exc})" if any(m in text for m in _DISK_MESSAGES) else None


def _drain_key(row: OutboxRow) -> tuple[int, int]:
    return (-row.priority, row.seq)


def _eviction_key(kind: str, priority: int, seq: int) -> tuple[bool, int, int]:
    return (kind == "alert", priority, seq)


def _seqs(payload: dict[str, Any]) -> list[int]:
    """Every original seq a (possibly merged) payload stands for."""
    return [int(s) for s in payload.get("merged_seqs") or [payload["seq"]]]


def _originals(payload_json: str) -> tuple[int, dict[str, Any] | None]:
    """How many original messages a stored row stands for, and the loss report it carries."""
    if '"merged_seqs"' not in payload_json and '"loss"' not in payload_json:
        return 1, None
    payload = json.loads(payload_json)
    return len(_seqs(payload)), payload.get("loss")


def _counters(report: dict[str, Any] | None) -> Iterator[tuple[str, int]]:
    """The counter keys and values of a loss report (the inverse of _loss_report)."""
    for group, counts in (report or {}).items():
        if isinstance(counts, dict):
            yield from ((f"{group}.{kind}", int(n)) for kind, n in counts.items() if n)
        elif counts:
            yield group, int(counts)


def _add_counts(a: Any, b: Any) -> Any:
    """Sum two loss reports (nested dicts of integers; None stands for nothing)."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _add_counts(a.get(k), b.get(k)) for k in sorted({*a, *b})}
    return a + b


def _opt(fn: Callable[[float, float], float], a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return fn(a, b)


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def _loss_report(counters: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """A loss report from counter keys ("compacted", "<group>.<kind>") and values."""
    report: dict[str, Any] = {"compacted": 0, **{group: {} for group in _LOSS_GROUPS}}
    for key, value in counters:
        if key == "compacted":
            report["compacted"] += int(value)
        elif value:
            group, kind = key.split(".", 1)
            report[group][kind] = report[group].get(kind, 0) + int(value)
    return report


def _connect(path: Path) -> Any:
    """A sqlite-utils Database over a connection the publisher thread may use too."""
    conn = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    return sqlite_utils.Database(conn)


class Outbox:
    """Durable, bounded, thread-safe queue of outgoing messages (see the module docstring)."""

    def __init__(self, path: str | Path, *, device: str, boot_id: str, clock: Clock,
                 max_bytes: int, max_age_s: float, merge: MergeFn | None,
                 memory_limit: int = 1000, auto_caps: bool = True) -> None:
        if max_bytes < _MIN_MAX_BYTES:
            raise OutboxError(f"outbox max_bytes must be at least {_MIN_MAX_BYTES}")
        self.path = Path(path)
        self.device, self.boot_id = device, boot_id
        self._clock, self._merge = clock, merge
        self.max_bytes, self.max_age_s = max_bytes, max_age_s
        self._memory_limit, self._auto_caps = memory_limit, auto_caps
        self.degraded: str | None = None
        """Why writes currently fail, or None when the disk takes them."""
        self._lock = threading.RLock()
        self._memory: list[_Entry] = []
        self._acks: set[int] = set()  # acknowledged, but the DELETE has not committed yet
        self._unsaved: Counter[str] = Counter()  # loss counters not yet in meta
        try:
            self.db = _connect(self.path)
            self._conn: sqlite3.Connection = self.db.conn
            self._configure()
            self._last_seq = self._read_last_seq()
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    # -- setup -----------------------------------------------------------------------------

    def _configure(self) -> None:
        """Pragmas, schema, and incremental auto-vacuum (converting an older file once)."""
        self.db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file
        mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {self.path}: cannot switch to WAL (got {mode})")
        self.db.execute("PRAGMA synchronous = FULL")
        self._page_size = int(self.db.execute("PRAGMA page_size").fetchone()[0])
        self._wal_budget = min(max(self.max_bytes // 8, 4 * self._page_size), _MAX_WAL_BUDGET)
        self._low_water = self.max_bytes - 2 * self._wal_budget
        self.db.execute(f"PRAGMA journal_size_limit = {self._wal_budget}")
        self.db.execute(f"PRAGMA wal_autocheckpoint = {self._wal_budget // self._page_size}")
        try:
            with self._txn():
                for statement in _DDL:
                    self.db.execute(statement)
            if self.db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self.db.executescript("VACUUM;")  # a file created without it, once
        except sqlite3.Error as exc:  # an existing outbox on a full or read-only disk
            if not self._has_schema():
                raise
            self._write_failed(exc)

    def _has_schema(self) -> bool:
        names = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        return {"messages", "meta"} <= names

    def _read_last_seq(self) -> int:
        meta = self.db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0]
        rows = self.db.execute("SELECT MAX(seq) FROM messages").fetchone()[0]
        return max(int(meta), int(rows or 0))

    @contextlib.contextmanager
    def _txn(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Write what memory still holds if the disk allows, then close the database."""
        with self._lock:
            if self._memory:
                self._flush()
            if self._memory:
                log.error("outbox closed with %d messages only in memory; they are lost",
                          len(self._memory))
            self.db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def last_seq(self) -> int:
        """The highest seq issued so far."""
        return self._last_seq

    # -- put and the memory overflow ------------------------------------------------------

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
            self._memory.append(entry)
            try:
                self._flush()
            except OutboxError:
                with contextlib.suppress(ValueError):
                    self._memory.remove(entry)
                raise
            self._bound_memory()
            if self._auto_caps and self.degraded is None and self._needs_caps():
                self.enforce_caps()
            return entry.seq

    def _cutoff(self) -> float:
        """Rows created before this have expired (``max_age_s <= 0``: nothing expires)."""
        return self._clock.now() - self.max_age_s if self.max_age_s > 0 else float("-inf")

    def _needs_caps(self) -> bool:
        """Rows expired, files above ``max_bytes``, or a WAL budget of free pages to return."""
        cutoff = self._cutoff()
        try:
            expired = self._conn.execute(
                "SELECT 1 FROM messages WHERE kind != 'alert' AND created < ? LIMIT 1",
                (cutoff,)).fetchone()
            free = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
            return (expired is not None or self._disk_bytes() > self.max_bytes
                    or free * self._page_size > self._wal_budget)
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return False

    def _entry(self, kind: str, payload: dict[str, Any], priority: int,
               window_start: float | None, window_end: float | None,
               attach_loss: bool) -> _Entry:
        """Validate and copy the payload, adding the transport fields (seq comes later)."""
        if kind not in PRIORITY:
            raise OutboxError(f"unknown outbox message kind {kind!r}")
        try:
            body: dict[str, Any] = json.loads(_dumps(payload))
        except (TypeError, ValueError) as exc:
            raise OutboxError(f"{kind} payload is not strict JSON: {exc}") from exc
        if "merged_seqs" in body:
            raise OutboxError("payload field 'merged_seqs' belongs to the outbox")
        try:  # a loss report the caller took with take_loss_report(): summed and kept
            list(_counters(body.get("loss")))
        except (AttributeError, TypeError, ValueError) as exc:
            raise OutboxError(f"payload field 'loss' is not a loss report: {exc}") from exc
        body.update(device=self.device, boot_id=self.boot_id, seq=0)
        return _Entry(0, kind, priority, self._clock.now(), window_start, window_end, body,
                      attach_loss)

    def retry(self) -> bool:
        """Try to write the memory list and pending acks to disk; True when nothing is left."""
        with self._lock:
            self._flush()
            return self.degraded is None

    def _flush(self) -> None:
        """Commit memory entries (oldest first) with the side state, batch by batch."""
        while self._memory or self._acks or self._unsaved:
            batch = self._memory[:_BATCH]
            try:
                with self._txn():
                    self._persist_side_state()
                    for entry in batch:
                        self._insert(entry)
            except sqlite3.Error as exc:
                self._write_failed(exc)
                return
            del self._memory[:len(batch)]
            self._acks.clear()
            self._unsaved.clear()
        if self.degraded is not None:
            log.info("outbox writes work again (was: %s)", self.degraded)
        self.degraded = None

    def _persist_side_state(self) -> None:
        for seq in self._acks:
            self._conn.execute("DELETE FROM messages WHERE seq = ?", (seq,))
        for key, n in self._unsaved.items():
            self._count(key, n)

    def _insert(self, entry: _Entry) -> None:
        payload = entry.payload
        if entry.attach_loss:
            payload = {**payload, "loss": self._take_disk_loss()}
        self._conn.execute(
            f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.seq, entry.kind, entry.priority, entry.created, entry.window_start,
             entry.window_end, _dumps(payload)))
        self._conn.execute("UPDATE meta SET value = MAX(value, ?) WHERE key = 'last_seq'",
                           (entry.seq,))

    def _write_failed(self, exc: sqlite3.Error) -> None:
        """Enter degraded mode for a disk condition; raise OutboxError for anything else."""
        reason = _disk_condition(exc)
        if reason is None:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        if self.degraded is None:
            log.warning("outbox degraded, keeping messages in memory: %s", reason)
        self.degraded = reason

    def _bound_memory(self) -> None:
        """Drop the lowest-priority, oldest memory entries beyond ``memory_limit``."""
        while len(self._memory) > self._memory_limit:
            victim = min(self._memory, key=lambda e: _eviction_key(e.kind, e.priority, e.seq))
            self._memory.remove(victim)
            self._unsaved[f"dropped.{victim.kind}"] += 1
            log.warning("outbox memory full: dropped %s seq %d", victim.kind, victim.seq)

    # -- the publisher's side -------------------------------------------------------------

    def pending(self, limit: int, exclude: Collection[int] = ()) -> list[OutboxRow]:
        """Up to ``limit`` unacknowledged rows, higher priority first, then by seq.

        ``exclude``: seqs the caller already holds (published, PUBACK not yet processed)."""
        with self._lock:
            skip = sorted(set(exclude) | self._acks)
            where = f"WHERE seq NOT IN ({','.join('?' * len(skip))})" if skip else ""
            try:
                rows = self.db.query(
                    f"SELECT {_COLUMNS} FROM messages {where} ORDER BY priority DESC, seq "
                    "LIMIT ?", [*skip, limit])
                disk = [OutboxRow(r["seq"], r["kind"], r["priority"], r["created"],
                                  r["payload"], r["window_start"], r["window_end"])
                        for r in rows if r["seq"] not in self._acks]
            except (sqlite3.Error, ValueError) as exc:
                raise OutboxError(f"outbox {self.path}: cannot read pending rows: {exc}") from exc
            memory = [e.row() for e in self._memory if e.seq not in skip]
        return sorted(disk + memory, key=_drain_key)[:limit]

    def ack(self, seq: int) -> None:
        """Forget a delivered message; acknowledging an unknown or acked seq does nothing."""
        self.ack_many([seq])

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Forget several delivered messages in one transaction (one fsync)."""
        with self._lock:
            todo = set(seqs)
            in_memory = [e for e in self._memory if e.seq in todo]
            for entry in in_memory:
                self._memory.remove(entry)
                todo.discard(entry.seq)
            if not todo:
                return
            try:
                with self._txn():
                    self._conn.executemany("DELETE FROM messages WHERE seq = ?",
                                           [(s,) for s in sorted(todo)])
            except sqlite3.Error as exc:
                self._write_failed(exc)
                self._acks.update(todo)

    def reject(self, seq: int, reason: str) -> None:
        """Drop a message the broker refused for good; it counts under ``rejected``."""
        with self._lock:
            log.error("outbox: the broker rejected seq %d (%s); dropping it", seq, reason)
            for entry in self._memory:
                if entry.seq == seq:
                    self._memory.remove(entry)
                    self._unsaved[f"rejected.{entry.kind}"] += 1
                    return
            try:
                row = self._conn.execute("SELECT seq, kind, payload FROM messages WHERE seq = ?",
                                         (seq,)).fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            if row is None or seq in self._acks:
                return
            try:
                with self._txn():
                    self._delete_rows([row], "rejected")
            except sqlite3.Error as exc:
                self._write_failed(exc)
                self._acks.add(seq)
                n, carried = _originals(row[2])
                self._unsaved.update({f"rejected.{row[1]}": n, **dict(_counters(carried))})

    def stats(self) -> OutboxStats:
        """Pending count, bytes on disk, oldest message, memory use and degradation."""
        with self._lock:
            try:
                count, oldest = self._conn.execute(
                    "SELECT COUNT(*), MIN(created) FROM messages").fetchone()
                acked = sorted(self._acks)  # acknowledged but not yet deleted from disk
                unacked = self._conn.execute(
                    f"SELECT COUNT(*) FROM messages WHERE seq IN ({','.join('?' * len(acked))})",
                    acked).fetchone()[0] if acked else 0
                size = self._disk_bytes()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            created = [oldest] if oldest is not None else []
            created += [e.created for e in self._memory]
            return OutboxStats(count - unacked + len(self._memory), size,
                               min(created) if created else None, len(self._memory),
                               self.degraded)

    # -- loss accounting --------------------------------------------------------------------

    def _count(self, key: str, n: int) -> None:
        if n:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value", (key, n))

    def _take_disk_loss(self) -> dict[str, Any]:
        """Read and reset the loss counters in meta (inside a transaction)."""
        counters = self._conn.execute(f"SELECT key, value FROM meta WHERE {_LOSS_KEYS}").fetchall()
        self._conn.execute(f"DELETE FROM meta WHERE {_LOSS_KEYS}")
        return _loss_report(counters)

    def take_loss_report(self) -> dict[str, Any]:
        """Compacted, evicted and dropped message counts since the last report; resets them.

        ``{"compacted": n, "evicted": {kind: n}, "dropped": {kind: n}, "rejected": {kind:
        n}}``: compacted messages ride inside an earlier row (``merged_seqs``); evicted (disk
        caps), dropped (memory overflow) and rejected (refused by the broker) ones are
        lost. If the disk refuses the reset, its counters stay for a later report and only
        the memory counters are returned.
        """
        with self._lock:
            report = _loss_report(self._unsaved.items())
            try:
                with self._txn():
                    report = _add_counts(report, self._take_disk_loss())
            except sqlite3.Error as exc:
                self._write_failed(exc)
            self._unsaved.clear()
            return report

    # -- caps -------------------------------------------------------------------------------

    def _disk_bytes(self) -> int:
        pages = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
        wal = Path(f"{self.path}-wal")
        return pages * self._page_size + (wal.stat().st_size if wal.exists() else 0)

    def _live_bytes(self) -> int:
        """Bytes of the pages in use, as this connection sees them (inside a transaction too)."""
        pages = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _over(self) -> bool:
        """Live data above the low-water mark: ``max_bytes`` minus twice the WAL budget.

        One budget leaves room for the WAL, the other for puts before the next run.
        """
        return self._live_bytes() > self._low_water

    def enforce_caps(self) -> CapReport:
        """Age eviction, then compaction, then eviction by priority; then shrink the file.

        A disk condition stops the run early (and sets ``degraded``); what was committed
        before stays committed and counted.
        """
        with self._lock:
            compacted, evicted, before = 0, Counter[str](), 0
            try:
                before = self._disk_bytes()
                evicted += self._evict_expired()
                compacted = self._compact()
                evicted += self._evict_to_fit()
            except sqlite3.Error as exc:
                self._write_failed(exc)
            self._shrink()
            return CapReport(compacted, dict(evicted), before, self._disk_bytes())

    def _delete_rows(self, rows: list[tuple[int, str, str]],
                     group: str = "evicted") -> Counter[str]:
        """Delete (seq, kind, payload) rows and count their original messages as lost.

        A loss report a deleted row carried goes back to the counters, for the next one.
        """
        lost: Counter[str] = Counter()
        for seq, kind, payload in rows:
            self._conn.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            n, carried = _originals(payload)
            lost[kind] += n
            for key, k in _counters(carried):
                self._count(key, k)
        for kind, n in lost.items():
            self._count(f"{group}.{kind}", n)
        return lost

    def _evict_expired(self) -> Counter[str]:
        """Evict status and summary rows older than ``max_age_s``; alerts never expire."""
        cutoff = self._cutoff()
        lost: Counter[str] = Counter()
        while True:
            with self._txn():
                rows = self._conn.execute(
                    "SELECT seq, kind, payload FROM messages WHERE kind != 'alert' "
                    "AND created < ? LIMIT ?", (cutoff, _BATCH)).fetchall()
                lost += self._delete_rows(rows)
            if len(rows) < _BATCH:
                return lost

    def _evict_to_fit(self) -> Counter[str]:
        """Evict lowest priority, oldest first (alerts last) until the live data fits."""
        lost: Counter[str] = Counter()
        while self._over():
            with self._txn():
                rows = self._eviction_batch()
                for row in rows:
                    lost += self._delete_rows([row])
                    if not self._over():
                        break
            if not rows:
                return lost
        return lost

    def _eviction_batch(self) -> list[tuple[int, str, str]]:
        """The next rows to evict: lowest priority, oldest first; alerts when nothing else is.

        Walks the priorities present through the drain index (no scan of the table).
        """
        for alerts in (False, True):
            floor = float("-inf")
            while True:
                priority = self._conn.execute(
                    "SELECT MIN(priority) FROM messages WHERE priority > ?", (floor,)
                ).fetchone()[0]
                if priority is None:
                    break
                rows = self._conn.execute(
                    "SELECT seq, kind, payload FROM messages WHERE priority = ? "
                    "AND (kind = 'alert') = ? ORDER BY seq LIMIT ?",
                    (priority, alerts, _BATCH)).fetchall()
                if rows:
                    return rows
                floor = priority
        return []

    def _compact(self) -> int:
        """Merge consecutive summaries pass after pass until the data fits or none merge.

        Returns the number of merges: each folds one more original message into an
        earlier row (the rows already inside b were counted when they were folded).
        """
        total = 0
        while self._merge is not None and self._over():
            cursor: int | None = -1
            merges = 0
            while cursor is not None and self._over():
                with self._txn():
                    cursor, n = self._merge_batch(cursor)
                merges += n
            if merges == 0:
                break
            total += merges
        return total

    def _merge_batch(self, cursor: int) -> tuple[int | None, int]:
        """Up to _BATCH pairwise merges after ``cursor``: (next cursor or None, merges)."""
        merges = 0
        for _ in range(_BATCH):
            pair = self._conn.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE kind = 'summary' AND seq > ? "
                "ORDER BY seq LIMIT 2", (cursor,)).fetchall()
            if len(pair) < 2:
                return None, merges
            a, b = pair
            merged = self._try_merge(json.loads(a[6]), json.loads(b[6]))
            if merged is None:
                cursor = a[0]  # b may still merge with its successor
                continue
            self._store_merge(a, b, merged)
            merges, cursor = merges + 1, b[0]
            if not self._over():
                break
        return cursor, merges

    def _try_merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
        """The merged payload of two summaries, or None if they must stay apart."""
        merge = self._merge
        if merge is None or any(a.get(k) != b.get(k) for k in ("reference_id", "boot_id")):
            return None
        strip = [{k: v for k, v in p.items() if k not in TRANSPORT_FIELDS} for p in (a, b)]
        try:
            merged = dict(merge(*strip))
        except Exception as exc:  # a broken merge must not defeat the disk cap
            log.warning("outbox: cannot merge summaries %s and %s: %s", a["seq"], b["seq"], exc)
            return None
        merged.update(device=a.get("device"), boot_id=a.get("boot_id"), seq=a["seq"],
                      merged_seqs=_seqs(a) + _seqs(b))
        if "loss" in a or "loss" in b:
            merged["loss"] = _add_counts(a.get("loss", {}), b.get("loss", {}))
        return merged

    def _store_merge(self, a: tuple[Any, ...], b: tuple[Any, ...],
                     merged: dict[str, Any]) -> None:
        """Replace row a by the merged payload, delete row b, count one more compacted."""
        self._conn.execute(
            "UPDATE messages SET created = ?, window_start = ?, window_end = ?, payload = ? "
            "WHERE seq = ?",
            (min(a[3], b[3]), _opt(min, a[4], b[4]), _opt(max, a[5], b[5]), _dumps(merged),
             a[0]))
        self._conn.execute("DELETE FROM messages WHERE seq = ?", (b[0],))
        self._count("compacted", 1)

    def _shrink(self) -> None:
        """Give freed pages back to the file system: incremental vacuum, TRUNCATE checkpoint."""
        try:
            if int(self._conn.execute("PRAGMA freelist_count").fetchone()[0]):
                # executescript steps the pragma to the end (execute frees a single page)
                self.db.executescript("PRAGMA incremental_vacuum;")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            if _disk_condition(exc) is None:
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            log.info("outbox: could not shrink the file: %s", exc)
