"""The collector's idempotent store: SQLite or PostgreSQL, one schema and one design.

``open_store(url)`` picks the backend:

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (three slashes then the
  path, as SQLAlchemy spells it) or ``sqlite:///:memory:``. WAL, ``synchronous=NORMAL``
  (a power cut may undo the last committed transactions but never corrupts the file; a
  process crash loses nothing), ``busy_timeout``. Several processes may share the file;
  writers take turns (``BEGIN IMMEDIATE``).
- ``postgresql://user@host:port/dbname`` (or ``postgres://``): psycopg 3, autocommit off,
  one connection per ``Store``. Several collector processes may share one database.

Idempotence
    Device -> collector messages (``summary``, ``alert``, ``cmd_result``) are keyed by
    ``(device, boot_id, seq)`` and inserted with ``INSERT ... ON CONFLICT DO NOTHING``, so a
    message delivered twice (QoS 1, a re-published backlog, two collectors) is stored once
    and exactly one ``ingest`` call -- in whatever process -- reports it as new. Within a
    batch, rows are written in one global order (messages by key, then covered seqs, then
    devices by id) so that concurrent batches cannot deadlock each other; a deadlock or
    serialisation failure reported by PostgreSQL anyway is retried.

Poison
    An item whose values the database refuses (out of a column's range, a character it
    cannot store) makes ``ingest_many`` try each item alone, rolled back, and raise
    :class:`RejectedPayload` naming the first one refused: the caller keeps it in the
    ``quarantine`` table and stores the rest.

Schema
    ``devices``: one row per device (status, manifest, last message time).
    ``messages``: every stored message, its payload as JSON text; ``alert_id`` and
    ``alert_state`` are copied out of alert payloads so active alerts are counted in SQL.
    ``covered``: the original seqs listed in ``merged_seqs`` of compacted summaries, so
    gap detection counts them as present. Gaps are counted over the union of message seqs
    and covered seqs, per device across boots (seqs are per device).
    ``references``: the reference profiles devices publish (retained), by (device,
    reference id): the bins and histograms of the windows stored.
    ``quarantine``: messages the store refused (a value the database cannot take...), kept
    as received (topic, bytes, reason, detail) for an operator; never read by ingest.
    Payloads are the canonical JSON of the decoded message (``msgspec.json.encode``),
    summaries as schema 2.
    Schema creation is idempotent (``CREATE ... IF NOT EXISTS``) and, on PostgreSQL, runs
    in one transaction under ``pg_advisory_xact_lock`` so that two processes starting at
    once do not race on the catalog.

Threads
    Every ``Store`` holds one connection and one lock taken for each whole public call.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import msgspec

from edgewatch.contracts.alert import ACTIVE, Alert
from edgewatch.contracts.codec import REASONS, Message
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.reference import Reference
from edgewatch.contracts.status import Manifest, Status
from edgewatch.contracts.summary import Summary, SummaryV1, compact
from edgewatch.errors import EdgewatchError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

MESSAGE_KINDS = ("summary", "alert", "cmd_result")
"""Kinds stored in ``messages``, keyed by (device, boot_id, seq)."""
STATUS_KIND = "status"
"""The retained birth / last-will kind: updates ``devices`` only."""
ACTIVE_ALERT_STATES = ACTIVE
"""Alert states that count as active (in the alert's latest message)."""

REFERENCE_KIND = "reference"
"""The retained reference profile: stored in ``references`` by (device, reference id)."""
KINDS: dict[type, str] = {Summary: "summary", Alert: "alert", CommandResult: "cmd_result",
                          Status: STATUS_KIND, Reference: REFERENCE_KIND}
"""The kind of each device message type (the leaf of its topic)."""


class Item(NamedTuple):
    """One message to ingest, decoded (:func:`edgewatch.contracts.codec.decode`)."""

    kind: str
    fleet: str
    device: str
    """The topic's device (the message must name the same)."""
    message: Message
    received: float
    topic: str = ""
    """The topic it arrived on, and its bytes as received: what :class:`Quarantined`
    keeps when the store refuses the message."""
    raw: bytes = b""


@dataclass(frozen=True)
class Quarantined:
    """A message the store refused, kept as received in the ``quarantine`` table."""

    received: float
    topic: str
    reason: str
    """One of :data:`edgewatch.contracts.codec.REASONS` (``store`` from the ingest)."""
    detail: str
    payload: bytes
    id: int | None = None
    """Assigned by the store."""


Row = tuple[Any, ...]
T = TypeVar("T")

_SQLITE_BUSY_TIMEOUT_S = 30.0
_PG_CONNECT_TIMEOUT_S = 10
_PG_SCHEMA_LOCK = 0x6577_636F_6C6C_6563  # "ewcollec": the advisory lock for schema creation
_RETRIES = 5
_RETRY_PAUSE_S = 0.05

_DDL = (
    """CREATE TABLE IF NOT EXISTS devices (
        device TEXT PRIMARY KEY,
        fleet TEXT NOT NULL,
        online BOOLEAN NOT NULL DEFAULT FALSE,
        status_time DOUBLE PRECISION,
        last_seen DOUBLE PRECISION,
        boot_id TEXT,
        manifest TEXT)""",
    """CREATE TABLE IF NOT EXISTS messages (
        device TEXT NOT NULL,
        boot_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        fleet TEXT NOT NULL,
        received DOUBLE PRECISION NOT NULL,
        window_start DOUBLE PRECISION,
        window_end DOUBLE PRECISION,
        historical BOOLEAN NOT NULL,
        alert_id TEXT,
        alert_state TEXT,
        payload TEXT NOT NULL,
        PRIMARY KEY (device, boot_id, seq))""",
    "CREATE INDEX IF NOT EXISTS messages_window ON messages (device, kind, window_end)",
    """CREATE INDEX IF NOT EXISTS messages_alert ON messages (device, alert_id, seq)
        WHERE kind = 'alert'""",
    """CREATE TABLE IF NOT EXISTS covered (
        device TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (device, seq))""",
    """CREATE TABLE IF NOT EXISTS "references" (
        device TEXT NOT NULL,
        reference_id TEXT NOT NULL,
        fleet TEXT NOT NULL,
        received DOUBLE PRECISION NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        model_sha256 TEXT NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (device, reference_id))""",
)
_QUARANTINE_DDL = (
    """CREATE TABLE IF NOT EXISTS quarantine (
        id {id} PRIMARY KEY,
        received DOUBLE PRECISION NOT NULL,
        topic TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        payload {blob} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS quarantine_received ON quarantine (received)",
)
"""The dead-letter table; ``{id}`` and ``{blob}`` are the backend's column types."""

_INSERT_MESSAGE = (
    "INSERT INTO messages (device, boot_id, seq, kind, fleet, received, window_start, "
    "window_end, historical, alert_id, alert_state, payload) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_INSERT_COVERED = "INSERT INTO covered (device, seq) VALUES (?, ?) ON CONFLICT DO NOTHING"
_INSERT_REFERENCE = (
    'INSERT INTO "references" (device, reference_id, fleet, received, created, model_sha256, '
    "payload) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
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
_ACTIVE_STATES_SQL = ", ".join(f"'{s}'" for s in ACTIVE_ALERT_STATES)


class StoreError(EdgewatchError):
    """The collector store cannot be opened, refused a payload, or the database failed."""


class RejectedPayload(StoreError):
    """An item the store will never accept (retrying is pointless); nothing was written.

    ``index`` is the item's position in the ``ingest_many`` batch (0 for ``ingest``): drop
    it (quarantine it) and ingest the rest again. ``detail`` says why, in a line of at most
    a few hundred characters that a database stores.
    """

    def __init__(self, index: int, detail: str) -> None:
        detail = _clean(detail, 500)
        super().__init__(f"item {index}: {detail}")
        self.index = index
        self.detail = detail
        self.reason = detail
        """The same as ``detail`` (the older name)."""


class _Refused(StoreError):
    """The database (or its driver) refused a value of the batch: one of its items is
    poison, not the database unreachable."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _DryRun(Exception):
    """Raised to roll a trial write back (:meth:`Store._culprit`)."""


def _first_line(exc: BaseException) -> str:
    """The error's class and first line: PostgreSQL's DETAIL lines may quote the row, that
    is the payload."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _clean(text: str, limit: int) -> str:
    """``text`` as a line any database stores: no NUL, no lone surrogate, at most about
    ``limit`` characters."""
    text = text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


@dataclass(frozen=True)
class DeviceState:
    """What the collector knows about one device."""

    device: str
    fleet: str
    online: bool
    """State of the latest status message (False until a birth arrives)."""
    status_time: float | None
    """Time of the latest status (its ``time``, or when it was received)."""
    last_seen: float | None
    """When the latest message or birth from the device was received."""
    boot_id: str | None
    """Boot id of the latest status."""
    manifest: Manifest | None
    """Manifest of the latest birth (None when none, or when it does not decode)."""
    last_summary: Summary | None
    """The summary with the greatest window end (None when none, or when it does not
    decode)."""
    last_window_end: float | None
    summaries: int
    historical: int
    """Messages flagged ``historical`` (sent from a backlog)."""
    active_alerts: int
    """Alert ids whose latest message (highest seq) is firing, acknowledged or snoozed."""
    gaps: int
    """Seqs missing between the device's smallest and largest known seq."""
    unreadable: int = 0
    """Stored payloads of the device this read could not decode (manifest, latest summary):
    left out above, logged."""


class UnreadableRow(EdgewatchError):
    """A stored payload that does not decode into its contract (a row written by hand, by a
    broken writer, or damaged). Not a :class:`StoreError`: the store itself works, and the
    readers skip the row."""


# --------------------------------------------------------------------------- reading rows


def _decode(text: str | bytes, kind: Any, what: str) -> Any:
    try:
        return msgspec.json.decode(text, type=kind)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise UnreadableRow(f"stored {what} does not decode: {str(exc)[:200]}") from None
    except (RecursionError, TypeError) as exc:
        raise UnreadableRow(f"stored {what} does not decode: {type(exc).__name__}") from None


def read_summary(text: str | bytes) -> Summary:
    """A stored summary as schema 2: rows stored as schema 1 JSON are compacted.
    UnreadableRow when the text is not a summary within the contract's bounds."""
    found = _decode(text, Summary | SummaryV1, "summary")
    return compact(found) if isinstance(found, SummaryV1) else found


def read_alert(text: str | bytes) -> Alert:
    """A stored alert message (UnreadableRow when it does not decode)."""
    alert: Alert = _decode(text, Alert, "alert")
    return alert


def read_manifest(text: str | bytes) -> Manifest:
    """A stored birth manifest (UnreadableRow when it does not decode)."""
    manifest: Manifest = _decode(text, Manifest, "manifest")
    return manifest


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


@dataclass(frozen=True)
class _Reference:
    """A reference profile, ready to insert into ``references``."""

    index: int
    device: str
    reference_id: str
    row: Row


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
           m.historical, alert_id, state, _json(m))
    return _Message(index, m.device, m.boot_id, m.seq, item.fleet, item.received, row, merged)


def _status(index: int, item: Item, s: Status) -> _Status:
    online = s.state == "online"
    manifest = _json(s.manifest) if online and s.manifest is not None else None
    row = (item.device, item.fleet, online, item.received if s.time is None else s.time,
           item.received if online else None, s.boot_id or None, manifest)
    return _Status(index, item.device, row)


def _reference(index: int, item: Item, r: Reference) -> _Reference:
    row = (item.device, r.id, item.fleet, item.received, r.created, r.model_sha256, _json(r))
    return _Reference(index, item.device, r.id, row)


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


# --------------------------------------------------------------------------- drivers


class _Driver(abc.ABC):
    """One database connection; SQL is written with ``?`` placeholders."""

    errors: tuple[type[Exception], ...]
    where: str
    ddl: tuple[str, ...]

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement and return its rows (none for statements without)."""

    @abc.abstractmethod
    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per parameter row."""

    @abc.abstractmethod
    def insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        """Run an ``INSERT ... ON CONFLICT DO NOTHING`` per row: was each row inserted?"""

    @abc.abstractmethod
    def begin(self, write: bool) -> None:
        """Open a transaction (write: take the write lock now where that matters)."""

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def create_schema(self) -> None:
        """Create the tables and indexes if missing, safely against concurrent creators."""

    def transient(self, exc: Exception) -> bool:
        """Whether a failed transaction may simply be run again."""
        return False

    def refused(self, exc: Exception) -> bool:
        """Whether a failed write failed on a value (one poison item), not on the database:
        a value the driver cannot send or the database cannot take."""
        return isinstance(exc, (ValueError, OverflowError))


class _SQLiteDriver(_Driver):
    def __init__(self, path: str) -> None:
        self.errors = (sqlite3.Error,)
        self.where = f"sqlite {path}"
        self.ddl = (*_DDL, *(d.format(id="INTEGER", blob="BLOB") for d in _QUARANTINE_DDL))
        self.conn = sqlite3.connect(path, timeout=_SQLITE_BUSY_TIMEOUT_S,
                                    isolation_level=None, check_same_thread=False)
        self.conn.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
        self._wal(time.monotonic() + _SQLITE_BUSY_TIMEOUT_S)
        self.conn.execute("PRAGMA synchronous = NORMAL")

    def _wal(self, deadline: float) -> None:
        """Switch to WAL (persistent in the file). Switching can fail with "locked" at
        once, without the busy handler, while another process opens the new file too."""
        while True:
            try:
                mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() in ("wal", "memory"):
                    return
                self.conn.execute("PRAGMA journal_mode = WAL").fetchall()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.conn.executemany(sql, rows)

    def insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        execute = self.conn.execute
        return [execute(sql, row).rowcount == 1 for row in rows]

    def begin(self, write: bool) -> None:
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def refused(self, exc: Exception) -> bool:
        return super().refused(exc) or isinstance(exc, (sqlite3.DataError,
                                                        sqlite3.IntegrityError))

    def create_schema(self) -> None:
        self.begin(write=True)
        try:
            for ddl in self.ddl:
                self.conn.execute(ddl)
            self.commit()
        except BaseException:
            self.rollback()
            raise


class _PostgresDriver(_Driver):
    def __init__(self, url: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self.errors = (psycopg.Error,)
        self.where = f"postgresql {_redact(url)}"
        self.ddl = (*_DDL, *(d.format(id="BIGINT GENERATED BY DEFAULT AS IDENTITY",
                                      blob="BYTEA") for d in _QUARANTINE_DDL))
        self.url = url
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection[Row]:
        extra: dict[str, Any] = {}
        if "connect_timeout" not in self.url:
            extra["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
        return self._psycopg.connect(self.url, autocommit=False, **extra)

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.conn.cursor() as cur:
            cur.execute(self._sql(sql), params)
            return cur.fetchall() if cur.description is not None else []

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    def insert_new(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[bool]:
        if not rows:
            return []
        out: list[bool] = []
        with self.conn.cursor() as cur:
            cur.executemany(self._sql(sql) + " RETURNING 1", rows, returning=True)
            while True:
                out.append(cur.fetchone() is not None)
                if not cur.nextset():
                    break
        return out

    def begin(self, write: bool) -> None:
        if self.conn.broken or self.conn.closed:
            self.conn = self._connect()
        if not write:  # one snapshot for the several queries of a read
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()

    def close(self) -> None:
        self.conn.close()

    def create_schema(self) -> None:
        try:
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_SCHEMA_LOCK,))
            for ddl in self.ddl:
                self.conn.execute(ddl)
            self._lz4_payloads()
            self.conn.commit()
        except BaseException:
            self.rollback()
            raise

    def _lz4_payloads(self) -> None:
        """Compress payloads with lz4 rather than pglz where the server can (PostgreSQL 14+
        built with lz4): ingest is about a third faster, the table no bigger."""
        if self.conn.info.server_version < 140000:
            return
        found = self.conn.execute(
            "SELECT attcompression FROM pg_attribute "
            "WHERE attrelid = 'messages'::regclass AND attname = 'payload'").fetchone()
        if found is None or found[0] == "l":
            return
        try:
            with self.conn.transaction():  # a savepoint: a server without lz4 refuses
                self.conn.execute("ALTER TABLE messages ALTER COLUMN payload SET COMPRESSION lz4")
        except self._psycopg.errors.FeatureNotSupported:
            pass

    def transient(self, exc: Exception) -> bool:
        errors = self._psycopg.errors
        return isinstance(exc, (errors.DeadlockDetected, errors.SerializationFailure))

    def refused(self, exc: Exception) -> bool:
        psycopg = self._psycopg
        return super().refused(exc) or isinstance(exc, (psycopg.DataError,
                                                        psycopg.IntegrityError))


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _sqlite_path(url: str) -> str:
    rest = url[len("sqlite://"):]
    if not rest.startswith("/") or len(rest) < 2:
        raise StoreError(f"bad SQLite URL {url!r}: use sqlite:///relative/path.db, "
                         "sqlite:////absolute/path.db or sqlite:///:memory:")
    return rest[1:]


def open_store(url: str) -> Store:
    """Open (and create the schema of) the store at ``url``; see the module docstring."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    try:
        if scheme == "sqlite":
            driver: _Driver = _SQLiteDriver(_sqlite_path(url))
        elif scheme in ("postgresql", "postgres"):
            try:
                driver = _PostgresDriver(url)
            except ImportError as exc:
                raise StoreError("PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'"
                                 ) from exc
        else:
            raise StoreError(f"unsupported store URL {_redact(url)!r}: "
                             "expected sqlite:///... or postgresql://...")
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open {url}: {exc}") from exc
    except EdgewatchError:
        raise
    except Exception as exc:  # psycopg.Error: imported lazily
        raise StoreError(f"cannot connect to {_redact(url)}: {exc}") from exc
    store = Store(driver)
    try:
        store._run(write=True, work=driver.create_schema, begin=False)
    except BaseException:
        store.close()
        raise
    return store


# --------------------------------------------------------------------------- the store


class Store:
    """The collector's message store; build it with :func:`open_store`."""

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._abort()
            try:
                self._driver.close()
            except self._driver.errors as exc:
                raise StoreError(f"{self._driver.where}: {exc}") from exc

    # ----------------------------------------------------------------- transactions

    def _run(self, write: bool, work: Callable[[], T], begin: bool = True) -> T:
        """Run ``work`` in one transaction under the lock; database errors -> StoreError.

        Writes that fail with a transient error (deadlock, serialisation failure) are
        rolled back and run again, up to a few times. Writes that fail on a value (the
        driver or the database refuses it) raise :class:`_Refused`.
        """
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            driver = self._driver
            for attempt in range(_RETRIES + 1):
                try:
                    if begin:
                        driver.begin(write)
                    result = work()
                    driver.commit()
                    return result
                except driver.errors as exc:
                    self._abort()
                    if write and driver.refused(exc):
                        raise _Refused(_first_line(exc)) from exc
                    if write and attempt < _RETRIES and driver.transient(exc):
                        time.sleep(_RETRY_PAUSE_S * (attempt + 1))
                        continue
                    raise StoreError(f"{driver.where}: {exc}") from exc
                except (ValueError, OverflowError) as exc:  # a value the driver cannot send
                    self._abort()
                    if write and driver.refused(exc):
                        raise _Refused(_first_line(exc)) from exc
                    raise
                except BaseException:
                    self._abort()
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _abort(self) -> None:
        # a failed rollback means the connection is gone: the next begin reconnects (PG)
        with contextlib.suppress(*self._driver.errors):
            self._driver.rollback()

    # ----------------------------------------------------------------- writes

    def ingest(self, kind: str, fleet: str, device: str, message: Message,
               received: float) -> bool:
        """Store one decoded message; True if it was new, False for a duplicate.

        ``summary``, ``alert`` and ``cmd_result`` messages are keyed by their ``device``,
        ``boot_id`` and ``seq`` (RejectedPayload when the boot id is empty, or when the
        message's device is not ``device``) and bump the device's ``last_seen``. ``status``
        updates the device row (online state, status time, boot id, manifest of a birth)
        and returns True. ``reference`` is kept by (device, reference id).
        """
        return self.ingest_many([Item(kind, fleet, device, message, received)])[0]

    def ingest_many(self, items: Sequence[Item],
                    quarantine: Sequence[Quarantined] = ()) -> list[bool]:
        """Store a batch in one transaction; one ``ingest`` result per item, in order.

        A bad item raises :class:`RejectedPayload` naming it, and nothing is written: one
        that cannot be turned into rows at once, one whose values the database refuses
        after a trial of each item alone. The caller drops it (into ``quarantine``) and
        ingests the rest again. ``quarantine`` entries are written in the same
        transaction. Other StoreErrors (database unreachable...) may be retried.
        """
        batch = _prepare(items)
        kept = [_quarantine_row(q) for q in quarantine]
        if not items and not kept:
            return []
        try:
            return self._run(write=True, work=lambda: self._write(batch, len(items), kept))
        except _Refused as exc:
            culprit = self._culprit(batch, len(items))
            if culprit is None:
                raise StoreError(f"{self._driver.where}: the batch was refused, yet each of "
                                 f"its items alone is accepted: {exc.detail}") from exc
            raise RejectedPayload(*culprit) from exc

    def _write(self, batch: _Batch, n: int, quarantine: Sequence[Row]) -> list[bool]:
        """Insert a prepared batch (in the transaction of the caller); one result per item.

        The order of the tables, and of the rows within each, is the same in every batch
        (messages by key, covered seqs, references, devices by id) so that concurrent
        batches cannot deadlock each other."""
        driver = self._driver
        results = [True] * n
        messages = batch.messages
        inserted = driver.insert_new(_INSERT_MESSAGE, [m.row for m in messages])
        for m, new in zip(messages, inserted):
            results[m.index] = new
        fresh = [m for m, new in zip(messages, inserted) if new]
        covered, seen, status_rows = _device_writes(fresh, messages, batch.statuses)
        driver.execute_many(_INSERT_COVERED, covered)
        refs = batch.references
        for r, new in zip(refs, driver.insert_new(_INSERT_REFERENCE, [r.row for r in refs])):
            results[r.index] = new
        driver.execute_many(_SEEN_DEVICE, seen)
        driver.execute_many(_STATUS_DEVICE, status_rows)
        driver.execute_many(_INSERT_QUARANTINE, quarantine)
        return results

    def _culprit(self, batch: _Batch, n: int) -> tuple[int, str] | None:
        """(index, why) of the first item whose values the database refuses when written
        alone; each trial is rolled back. None when every item alone is accepted."""
        for index, one in batch.singles():
            def trial(one: _Batch = one) -> None:
                self._write(one, n, ())
                raise _DryRun

            try:
                self._run(write=True, work=trial)
            except _DryRun:
                continue
            except _Refused as exc:
                return index, exc.detail
        return None

    def quarantine(self, entries: Sequence[Quarantined]) -> None:
        """Keep messages the store refused (as ``ingest_many(..., quarantine=...)``)."""
        self.ingest_many([], entries)

    def quarantined(self, limit: int = 100) -> list[Quarantined]:
        """The messages kept in quarantine, newest first."""
        sql = ("SELECT id, received, topic, reason, detail, payload FROM quarantine "
               "ORDER BY received DESC, id DESC LIMIT ?")
        rows = self._run(False, lambda: self._driver.query(sql, (_limit(limit),)))
        return [Quarantined(float(received), str(topic), str(reason), str(detail),
                            bytes(payload), int(ident))
                for ident, received, topic, reason, detail, payload in rows]

    def purge_quarantine(self, before: float | None = None) -> int:
        """Delete the quarantined messages received before ``before`` (every one when
        None); how many were deleted."""
        sql = "DELETE FROM quarantine RETURNING id"
        params: tuple[float, ...] = ()
        if before is not None:
            if isinstance(before, bool) or not isinstance(before, (int, float)) or not (
                    math.isfinite(before)):
                raise StoreError(f"'before' must be a finite time, got {before!r}")
            sql = "DELETE FROM quarantine WHERE received < ? RETURNING id"
            params = (float(before),)
        return len(self._run(True, lambda: self._driver.query(sql, params)))

    def reference(self, device: str, reference_id: str) -> Reference | None:
        """The reference profile a device published under ``reference_id`` (None when the
        store has none)."""
        sql = 'SELECT payload FROM "references" WHERE device = ? AND reference_id = ?'
        rows = self._run(False, lambda: self._driver.query(sql, (device, reference_id)))
        if not rows:
            return None
        found: Reference = _decode(rows[0][0], Reference, "reference")
        return found

    # ----------------------------------------------------------------- reads

    def devices(self) -> list[DeviceState]:
        """Every known device, sorted by id."""
        return self._run(write=False, work=lambda: self._device_states(None))

    def device(self, device: str) -> DeviceState | None:
        """One device, or None if the store never heard of it."""
        found = self._run(write=False, work=lambda: self._device_states(device))
        return found[0] if found else None

    def summaries(self, device: str, limit: int = 20) -> list[Summary]:
        """The device's summaries (schema 2), newest window first; rows that do not decode
        are left out (and logged)."""
        sql = ("SELECT device, boot_id, seq, payload FROM messages WHERE device = ? "
               "AND kind = 'summary' ORDER BY window_end DESC, seq DESC LIMIT ?")
        rows = self._run(False, lambda: self._driver.query(sql, (device, _limit(limit))))
        return _readable(rows, read_summary)

    def alerts(self, device: str | None = None, limit: int = 100) -> list[Alert]:
        """Alert messages, newest first (by seq for one device, by arrival for all); rows
        that do not decode are left out (and logged)."""
        if device is None:
            sql = ("SELECT device, boot_id, seq, payload FROM messages WHERE kind = 'alert' "
                   "ORDER BY received DESC, device, seq DESC LIMIT ?")
            params: tuple[Any, ...] = (_limit(limit),)
        else:
            sql = ("SELECT device, boot_id, seq, payload FROM messages WHERE kind = 'alert' "
                   "AND device = ? ORDER BY seq DESC LIMIT ?")
            params = (device, _limit(limit))
        rows = self._run(False, lambda: self._driver.query(sql, params))
        return _readable(rows, read_alert)

    def count(self, kind: str | None = None) -> int:
        """Stored messages, of one kind or all."""
        where, params = _kind_filter(kind)
        rows = self._run(False, lambda: self._driver.query(
            f"SELECT COUNT(*) FROM messages{where}", params))
        return int(rows[0][0])

    def keys(self, kind: str | None = None) -> list[tuple[str, str, int]]:
        """The (device, boot_id, seq) keys stored, sorted."""
        where, params = _kind_filter(kind)
        rows = self._run(False, lambda: self._driver.query(
            f"SELECT device, boot_id, seq FROM messages{where} ORDER BY device, boot_id, seq",
            params))
        return [(str(d), str(b), int(s)) for d, b, s in rows]

    def _device_states(self, device: str | None) -> list[DeviceState]:
        query = self._driver.query
        where, params = ("", ()) if device is None else (" WHERE device = ?", (device,))
        base = query("SELECT device, fleet, online, status_time, last_seen, boot_id, manifest "
                     f"FROM devices{where} ORDER BY device", params)
        counts = {r[0]: r[1:] for r in query(
            "SELECT device, SUM(CASE WHEN kind = 'summary' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN historical THEN 1 ELSE 0 END), "
            f"MAX(CASE WHEN kind = 'summary' THEN window_end END) FROM messages{where} "
            "GROUP BY device", params)}
        gaps = {r[0]: int(r[2]) - int(r[1]) + 1 - int(r[3]) for r in query(
            "SELECT device, MIN(seq), MAX(seq), COUNT(*) FROM (SELECT device, seq FROM "
            f"messages{where} UNION SELECT device, seq FROM covered{where}) u GROUP BY device",
            params * 2)}
        active: dict[str, int] = dict(query(_active_alerts_sql(device is not None), params))
        return [self._state(row, counts.get(row[0]), gaps.get(row[0], 0),
                            int(active.get(row[0], 0))) for row in base]

    def _state(self, row: Row, counts: Row | None, gaps: int, active: int) -> DeviceState:
        device, fleet, online, status_time, last_seen, boot_id, manifest_text = row
        summaries, historical, last_end = counts if counts is not None else (0, 0, None)
        unreadable = 0
        manifest = None
        if manifest_text:
            try:
                manifest = read_manifest(manifest_text)
            except UnreadableRow as exc:
                log.warning("device %.130r: %s", device, exc)
                unreadable += 1
        last = None
        if summaries:
            found = self._driver.query(
                "SELECT device, boot_id, seq, payload FROM messages WHERE device = ? "
                "AND kind = 'summary' ORDER BY window_end DESC, seq DESC LIMIT 1", (device,))
            readable = _readable(found, read_summary)
            last = readable[0] if readable else None
            unreadable += len(found) - len(readable)
        return DeviceState(
            device=device, fleet=fleet, online=bool(online), status_time=_float(status_time),
            last_seen=_float(last_seen), boot_id=boot_id, manifest=manifest, last_summary=last,
            last_window_end=_float(last_end), summaries=int(summaries or 0),
            historical=int(historical or 0), active_alerts=active, gaps=gaps,
            unreadable=unreadable)


def _readable(rows: Sequence[Row], read: Callable[[str], T]) -> list[T]:
    """The payloads (last column) of ``rows`` that decode; the others are logged with
    their key (the first three columns) and left out."""
    out = []
    for row in rows:
        try:
            out.append(read(row[-1]))
        except UnreadableRow as exc:
            log.warning("skipping %.130r boot %.130r seq %s: %s", row[0], row[1], row[2], exc)
    return out


def _active_alerts_sql(one_device: bool) -> str:
    """Active alerts per device: alert messages in an active state with no later message
    (higher seq) for the same alert id; alerts without an id each stand for themselves."""
    return (
        "SELECT m.device, COUNT(*) FROM messages m WHERE "
        + ("m.device = ? AND " if one_device else "")
        + f"m.kind = 'alert' AND m.alert_state IN ({_ACTIVE_STATES_SQL}) "
        "AND (m.alert_id IS NULL OR NOT EXISTS (SELECT 1 FROM messages n WHERE "
        "n.device = m.device AND n.kind = 'alert' AND n.alert_id = m.alert_id "
        "AND n.seq > m.seq)) GROUP BY m.device"
    )


def _float(value: Any) -> float | None:
    """A number column as a float; None for NULL and for what is not a number (SQLite
    keeps whatever was written into a column)."""
    if value is None or isinstance(value, (bytes, str)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise StoreError(f"limit must be a non-negative integer, got {limit!r}")
    return limit


def _kind_filter(kind: str | None) -> tuple[str, tuple[Any, ...]]:
    if kind is None:
        return "", ()
    if kind not in MESSAGE_KINDS:
        raise StoreError(f"unknown message kind {kind!r} (stored kinds: {MESSAGE_KINDS})")
    return " WHERE kind = ?", (kind,)
