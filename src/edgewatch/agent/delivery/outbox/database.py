"""The outbox's SQLite file: connection, pragmas, schema, transactions, size on disk.

One connection (``check_same_thread=False``) in WAL mode with ``synchronous=FULL``, opened
through sqlite-utils. The file uses incremental auto-vacuum (an older file is converted
once), so ``shrink`` can give freed pages back. The WAL budget is ``max_bytes/8`` clamped to
16 KiB..4 MiB; the low-water mark of the live data is ``max_bytes`` minus twice that budget.
Not thread-safe on its own: the ``Outbox`` holds its lock around every use.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from edgewatch.errors import OutboxError

log = logging.getLogger(__name__)

MIN_MAX_BYTES = 96 * 1024  # the schema alone takes 7 pages
_BUSY_TIMEOUT_MS = 5000
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


def disk_condition(exc: sqlite3.Error) -> str | None:
    """The reason when ``exc`` means the disk does not take writes now, else None."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        reason = _DISK_CONDITIONS.get(code & 0xFF)
        return f"{reason} ({exc})" if reason else None
    text = str(exc).lower()
    return f"write failed ({exc})" if any(m in text for m in _DISK_MESSAGES) else None


def _connect(path: Path) -> Any:
    """A sqlite-utils Database over a connection the publisher thread may use too."""
    conn = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    return sqlite_utils.Database(conn)


class OutboxDatabase:
    """The SQLite file behind the outbox (see the module docstring)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        """Connect and set the pragmas; ``create_schema`` comes next. Raises sqlite3.Error."""
        self.path = path
        self.max_bytes = max_bytes
        self.db = _connect(path)
        self.conn: sqlite3.Connection = self.db.conn
        self.db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file
        mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {path}: cannot switch to WAL (got {mode})")
        self.db.execute("PRAGMA synchronous = FULL")
        self.page_size = int(self.db.execute("PRAGMA page_size").fetchone()[0])
        self.wal_budget = min(max(max_bytes // 8, 4 * self.page_size), _MAX_WAL_BUDGET)
        self.low_water = max_bytes - 2 * self.wal_budget
        self.db.execute(f"PRAGMA journal_size_limit = {self.wal_budget}")
        self.db.execute(f"PRAGMA wal_autocheckpoint = {self.wal_budget // self.page_size}")

    def create_schema(self) -> None:
        """Tables and indexes, and incremental auto-vacuum on a file created without it."""
        with self.txn():
            for statement in _DDL:
                self.db.execute(statement)
        if self.db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self.db.executescript("VACUUM;")  # a file created without it, once

    def has_schema(self) -> bool:
        names = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        return {"messages", "meta"} <= names

    @contextlib.contextmanager
    def txn(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    # -- size -------------------------------------------------------------------------------

    def free_pages(self) -> int:
        return int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])

    def disk_bytes(self) -> int:
        """page_count * page_size plus the WAL file's size."""
        pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        wal = Path(f"{self.path}-wal")
        return pages * self.page_size + (wal.stat().st_size if wal.exists() else 0)

    def live_bytes(self) -> int:
        """Bytes of the pages in use, as this connection sees them (inside a transaction too)."""
        pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        return (pages - self.free_pages()) * self.page_size

    def over(self) -> bool:
        """Live data above the low-water mark: ``max_bytes`` minus twice the WAL budget.

        One budget leaves room for the WAL, the other for puts before the next run.
        """
        return self.live_bytes() > self.low_water

    def shrink(self) -> None:
        """Give freed pages back to the file system: incremental vacuum, TRUNCATE checkpoint."""
        try:
            if self.free_pages():
                # executescript steps the pragma to the end (execute frees a single page)
                self.db.executescript("PRAGMA incremental_vacuum;")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            if disk_condition(exc) is None:
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            log.info("outbox: could not shrink the file: %s", exc)
