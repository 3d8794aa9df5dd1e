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

Schema
    ``devices``: one row per device (status, manifest, last message time).
    ``messages``: every stored message, its payload as JSON text; ``alert_id`` and
    ``alert_state`` are copied out of alert payloads so active alerts are counted in SQL.
    ``covered``: the original seqs listed in ``merged_seqs`` of compacted summaries, so
    gap detection counts them as present. Gaps are counted over the union of message seqs
    and covered seqs, per device across boots (seqs are per device).
    Schema creation is idempotent (``CREATE ... IF NOT EXISTS``) and, on PostgreSQL, runs
    in one transaction under ``pg_advisory_xact_lock`` so that two processes starting at
    once do not race on the catalog.

Threads
    Every ``Store`` holds one connection and one lock taken for each whole public call.
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from edgewatch.alerts import ACTIVE
from edgewatch.errors import EdgewatchError

if TYPE_CHECKING:
    import psycopg

MESSAGE_KINDS = ("summary", "alert", "cmd_result")
"""Kinds stored in ``messages``, keyed by (device, boot_id, seq)."""
STATUS_KIND = "status"
"""The retained birth / last-will kind: updates ``devices`` only."""
ACTIVE_ALERT_STATES = ACTIVE
"""Alert states that count as active (in the alert's latest message)."""

Item = tuple[str, str, str, dict[str, Any], float]
"""One message to ingest: (kind, fleet, device, payload, received)."""
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
)

_INSERT_MESSAGE = (
    "INSERT INTO messages (device, boot_id, seq, kind, fleet, received, window_start, "
    "window_end, historical, alert_id, alert_state, payload) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_INSERT_COVERED = "INSERT INTO covered (device, seq) VALUES (?, ?) ON CONFLICT DO NOTHING"
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
    it and ingest the rest again.
    """

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"item {index}: {reason}")
        self.index = index
        self.reason = reason


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
    manifest: dict[str, Any]
    """Manifest of the latest birth ({} when none)."""
    last_summary: dict[str, Any] | None
    """Payload of the summary with the greatest window end."""
    last_window_end: float | None
    summaries: int
    historical: int
    """Messages flagged ``historical`` (sent from a backlog)."""
    active_alerts: int
    """Alert ids whose latest message (highest seq) is firing, acknowledged or snoozed."""
    gaps: int
    """Seqs missing between the device's smallest and largest known seq."""


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class _Message:
    """A validated device -> collector message, ready to insert."""

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
    """A validated status message, ready to upsert into ``devices``."""

    device: str
    row: Row


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise StoreError(f"payload field {key!r} must be a non-empty string, got {value!r}")
    return value


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StoreError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StoreError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise StoreError(f"{what} must be finite, got {value!r}")
    return v


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"payload is not plain JSON: {exc}") from exc


def _check_device(device: str, payload: dict[str, Any]) -> str:
    named = _text(payload, "device")
    if named != device:
        raise StoreError(f"payload device {named!r} does not match the topic's {device!r}")
    return named


def _window(kind: str, payload: dict[str, Any]) -> tuple[float | None, float | None]:
    """(window_start, window_end); summaries must have a numeric ``window.end``."""
    window = payload.get("window")
    if not isinstance(window, dict):
        if kind == "summary":
            raise StoreError("summary payload lacks its 'window'")
        return None, None
    start = _number(window.get("start"), "window.start")
    end = _number(window.get("end"), "window.end")
    if kind == "summary" and end is None:
        raise StoreError("summary payload lacks 'window.end'")
    return start, end


def _merged_seqs(payload: dict[str, Any]) -> tuple[int, ...]:
    merged = payload.get("merged_seqs")
    if merged is None:
        return ()
    if not isinstance(merged, list):
        raise StoreError(f"merged_seqs must be a list, got {merged!r}")
    return tuple(_integer(s, "merged_seqs entry") for s in merged)


def _alert_fields(kind: str, payload: dict[str, Any]) -> tuple[str | None, str | None]:
    if kind != "alert":
        return None, None
    alert_id, state = payload.get("id"), payload.get("state")
    return (None if alert_id is None else str(alert_id),
            state if isinstance(state, str) else None)


def _message(index: int, item: Item) -> _Message:
    kind, fleet, device, payload, received = item
    name = _check_device(device, payload)
    boot_id = _text(payload, "boot_id")
    seq = _integer(payload.get("seq"), "payload field 'seq'")
    start, end = _window(kind, payload)
    alert_id, state = _alert_fields(kind, payload)
    row = (name, boot_id, seq, kind, fleet, received, start, end,
           payload.get("historical") is True, alert_id, state, _dumps(payload))
    return _Message(index, name, boot_id, seq, fleet, received, row, _merged_seqs(payload))


def _status(item: Item) -> _Status:
    _kind, fleet, device, payload, received = item
    if "device" in payload:
        _check_device(device, payload)
    state = payload.get("state")
    if not isinstance(state, str):
        raise StoreError(f"status payload field 'state' must be a string, got {state!r}")
    online = state == "online"
    when = _number(payload.get("time"), "status time")
    boot_id = payload.get("boot_id")
    manifest = payload.get("manifest") if online else None
    if manifest is not None and not isinstance(manifest, dict):
        raise StoreError(f"status manifest must be an object, got {manifest!r}")
    row = (device, fleet, online, received if when is None else when,
           received if online else None, boot_id if isinstance(boot_id, str) else None,
           None if manifest is None else _dumps(manifest))
    return _Status(device, row)


def _prepare_one(index: int, item: Item) -> _Message | _Status:
    if len(item) != 5:
        raise StoreError("expected (kind, fleet, device, payload, received)")
    kind, fleet, device, payload, received = item
    if not isinstance(payload, dict):
        raise StoreError("payload must be a JSON object")
    if not (isinstance(fleet, str) and fleet and isinstance(device, str) and device):
        raise StoreError("fleet and device must be non-empty strings")
    at = _number(received, "received")
    if at is None:
        raise StoreError("'received' must be a number")
    fixed: Item = (kind, fleet, device, payload, at)
    if kind == STATUS_KIND:
        return _status(fixed)
    if kind in MESSAGE_KINDS:
        return _message(index, fixed)
    raise StoreError(f"unknown kind {kind!r}")


def _prepare(items: Sequence[Item]) -> tuple[list[_Message], list[_Status]]:
    """Validate every item before anything is written; messages sorted by key."""
    messages: list[_Message] = []
    statuses: list[_Status] = []
    for index, item in enumerate(items):
        try:
            prepared = _prepare_one(index, item)
        except StoreError as exc:
            raise RejectedPayload(index, str(exc)) from exc
        if isinstance(prepared, _Status):
            statuses.append(prepared)
        else:
            messages.append(prepared)
    messages.sort(key=lambda m: (m.device, m.boot_id, m.seq))
    statuses.sort(key=lambda s: s.device)  # stable: a device's statuses stay in order
    return messages, statuses


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


class _SQLiteDriver(_Driver):
    def __init__(self, path: str) -> None:
        self.errors = (sqlite3.Error,)
        self.where = f"sqlite {path}"
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

    def create_schema(self) -> None:
        self.begin(write=True)
        try:
            for ddl in _DDL:
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
            for ddl in _DDL:
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
        rolled back and run again, up to a few times.
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
                    if write and attempt < _RETRIES and driver.transient(exc):
                        time.sleep(_RETRY_PAUSE_S * (attempt + 1))
                        continue
                    raise StoreError(f"{driver.where}: {exc}") from exc
                except BaseException:
                    self._abort()
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _abort(self) -> None:
        # a failed rollback means the connection is gone: the next begin reconnects (PG)
        with contextlib.suppress(*self._driver.errors):
            self._driver.rollback()

    # ----------------------------------------------------------------- writes

    def ingest(self, kind: str, fleet: str, device: str, payload: dict[str, Any],
               received: float) -> bool:
        """Store one message; True if it was new, False for a duplicate.

        ``summary``, ``alert`` and ``cmd_result`` payloads are keyed by their ``device``,
        ``boot_id`` and ``seq`` (StoreError when missing, or when the payload's device is
        not ``device``) and bump the device's ``last_seen``. ``status`` updates the device
        row (online state, status time, boot id, manifest of a birth) and returns True.
        """
        return self.ingest_many([(kind, fleet, device, payload, received)])[0]

    def ingest_many(self, items: Sequence[Item]) -> list[bool]:
        """Store a batch in one transaction; one ``ingest`` result per item, in order.

        Every item is validated first: a bad one raises :class:`RejectedPayload` (naming it)
        and nothing is written. Other StoreErrors (database unreachable...) may be retried.
        """
        messages, statuses = _prepare(items)
        if not items:
            return []

        def work() -> list[bool]:
            driver = self._driver
            results = [True] * len(items)
            inserted = driver.insert_new(_INSERT_MESSAGE, [m.row for m in messages])
            for m, new in zip(messages, inserted):
                results[m.index] = new
            fresh = [m for m, new in zip(messages, inserted) if new]
            covered, seen, status_rows = _device_writes(fresh, messages, statuses)
            driver.execute_many(_INSERT_COVERED, covered)
            driver.execute_many(_SEEN_DEVICE, seen)
            driver.execute_many(_STATUS_DEVICE, status_rows)
            return results

        return self._run(write=True, work=work)

    # ----------------------------------------------------------------- reads

    def devices(self) -> list[DeviceState]:
        """Every known device, sorted by id."""
        return self._run(write=False, work=lambda: self._device_states(None))

    def device(self, device: str) -> DeviceState | None:
        """One device, or None if the store never heard of it."""
        found = self._run(write=False, work=lambda: self._device_states(device))
        return found[0] if found else None

    def summaries(self, device: str, limit: int = 20) -> list[dict[str, Any]]:
        """The device's summary payloads, newest window first."""
        sql = ("SELECT payload FROM messages WHERE device = ? AND kind = 'summary' "
               "ORDER BY window_end DESC, seq DESC LIMIT ?")
        rows = self._run(False, lambda: self._driver.query(sql, (device, _limit(limit))))
        return [json.loads(r[0]) for r in rows]

    def alerts(self, device: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Alert payloads, newest first (by seq for one device, by arrival for all)."""
        if device is None:
            sql = ("SELECT payload FROM messages WHERE kind = 'alert' "
                   "ORDER BY received DESC, device, seq DESC LIMIT ?")
            params: tuple[Any, ...] = (_limit(limit),)
        else:
            sql = ("SELECT payload FROM messages WHERE kind = 'alert' AND device = ? "
                   "ORDER BY seq DESC LIMIT ?")
            params = (device, _limit(limit))
        rows = self._run(False, lambda: self._driver.query(sql, params))
        return [json.loads(r[0]) for r in rows]

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
        device, fleet, online, status_time, last_seen, boot_id, manifest = row
        summaries, historical, last_end = counts if counts is not None else (0, 0, None)
        last = None
        if summaries:
            found = self._driver.query(
                "SELECT payload FROM messages WHERE device = ? AND kind = 'summary' "
                "ORDER BY window_end DESC, seq DESC LIMIT 1", (device,))
            last = json.loads(found[0][0]) if found else None
        return DeviceState(
            device=device, fleet=fleet, online=bool(online), status_time=_float(status_time),
            last_seen=_float(last_seen), boot_id=boot_id,
            manifest=json.loads(manifest) if manifest else {}, last_summary=last,
            last_window_end=_float(last_end), summaries=int(summaries or 0),
            historical=int(historical or 0), active_alerts=active, gaps=gaps)


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
    return None if value is None else float(value)


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
