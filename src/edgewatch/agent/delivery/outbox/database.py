"""The outbox's SQLite file: connection, pragmas, schema, transactions, size on disk.

One connection (``check_same_thread=False``) in WAL mode with ``synchronous=FULL``, the
standard library's ``sqlite3``: a wrapper such as sqlite-utils would add nothing the outbox
uses, and load its own dependencies (click, dateutil, pluggy, OpenSSL through hashlib) into
every device's memory. The file uses incremental auto-vacuum (an older file is converted
once), so ``shrink`` can give freed pages back. Not thread-safe on its own: the ``Outbox``
holds its lock around every use.

The cap holds at every instant
    ``max_bytes`` bounds the sum of every file of the outbox on disk: the database, its
    ``-wal`` and its ``-shm`` (the WAL index SQLite maps into memory: a real 32 KiB file
    next to the database, so it counts). It is split into fixed budgets:

    - ``-shm``: 32 KiB (one block indexes 4096 WAL frames; the WAL never holds that many);
    - ``-wal``: ``wal_max`` = ``wal_budget`` (after a commit that leaves more in the WAL,
      ``txn`` runs a TRUNCATE checkpoint, back to 0 bytes) plus one transaction of at
      most ``txn_pages`` frames (the callers size their batches with ``TxnBudget``);
    - the database: ``budget_pages`` pages, enforced by SQLite itself through ``PRAGMA
      max_page_count``: a write that would grow the file further fails with SQLITE_FULL
      (``over_budget`` tells it from a full disk) and the outbox makes room, then retries;
    The WAL budget is ``max_bytes/16`` clamped to 0..4 MiB (below two frames: 0, a
    checkpoint after every commit); ``txn_pages`` is ``max_bytes/16`` in pages clamped to
    16..1024. A message too large to be merged within one transaction (``fits``: about
    12 KB at the smallest cap) is evicted when it is put. No temporary file is written:
    ``temp_store`` is memory and the file is never VACUUMed (but once, to convert a file
    created without auto-vacuum). A file larger than the cap (written under a larger one)
    keeps its size until ``shrink`` gives pages back; then the budget applies again.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from edgewatch.errors import OutboxError

log = logging.getLogger(__name__)

MIN_MAX_BYTES = 145 * 1024
"""The smallest cap: the -shm, one transaction of WAL, the schema (7 pages) and a few rows."""
SHM_BYTES = 32 * 1024
"""The -shm file of a WAL database (one 32 KiB block per 4096 WAL frames)."""
WAL_HEADER, FRAME_HEADER = 32, 24
TXN_FIXED_PAGES = 6
"""Pages any write transaction may touch besides its rows: page 1, ``meta`` and its index,
a pointer map, the freelist trunk, a table interior page (measured: a put of a 5 KB summary
writes 10 frames, a merge 12)."""
DELETE_PAGES = 3
"""WAL frames one deleted row may dirty: its table leaf and two index leaves."""
_SCHEMA_PAGES = 7
_BUSY_TIMEOUT_MS = 5000
_MAX_WAL_BUDGET = 4 * 1024 * 1024
_SQLITE_FULL = 13
_DISK_CONDITIONS = {  # SQLite primary result codes that mean "writes do not work now"
    5: "database is busy", 6: "database is locked", 8: "database is read-only",
    10: "disk I/O error", 13: "disk is full", 14: "cannot open database file",
}
_DISK_MESSAGES = ("full", "readonly", "read-only", "disk i/o", "locked", "unable to open")
_DDL = (
    """CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, priority INTEGER NOT NULL,
        created REAL NOT NULL, window_start REAL, window_end REAL, payload TEXT NOT NULL,
        wire BLOB)""",
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


def _connect(path: Path) -> sqlite3.Connection:
    """A connection the publisher thread may use too, in autocommit mode (the outbox opens
    its own transactions)."""
    return sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)


class OutboxDatabase:
    """The SQLite file behind the outbox (see the module docstring)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        """Connect and set the pragmas; ``create_schema`` comes next. Raises sqlite3.Error."""
        self.path = path
        self.max_bytes = max_bytes
        self.db = self.conn = _connect(path)
        self.db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file
        mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {path}: cannot switch to WAL (got {mode})")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("PRAGMA temp_store = MEMORY")  # no temporary files on disk
        # Deleted rows are not overwritten at the cost of more writes (some builds, such as
        # Debian's, overwrite them all: a delivered row then costs its pages twice).
        self.db.execute("PRAGMA secure_delete = FAST")
        self.page_size = page = int(self.db.execute("PRAGMA page_size").fetchone()[0])
        frame = page + FRAME_HEADER
        self.frame_size = frame
        budget = min(max_bytes // 16, _MAX_WAL_BUDGET) // frame
        self.wal_budget = budget * frame if budget >= 2 else 0
        self.txn_pages = min(max(max_bytes // 16 // page, 16), 1024)
        self.wal_max = self.wal_budget + self.txn_pages * frame + WAL_HEADER
        self.budget_pages = (max_bytes - SHM_BYTES - self.wal_max) // page
        if self.budget_pages < _SCHEMA_PAGES + 3:
            raise OutboxError(f"outbox max_bytes {max_bytes} leaves no room for rows")
        self.room_pages = max(1, self.budget_pages // 8)
        self.low_water = (self.budget_pages - 2 * self.room_pages) * page
        """Compaction and eviction bring the live pages down to this many bytes."""
        self.db.execute(f"PRAGMA journal_size_limit = {self.wal_budget}")
        self.db.execute(f"PRAGMA wal_autocheckpoint = {max(1, self.wal_budget // frame)}")
        self.apply_budget()

    def apply_budget(self) -> None:
        """``PRAGMA max_page_count``: SQLite refuses to grow the file past the budget (it
        keeps a larger file's size until pages are given back)."""
        self.page_limit = int(
            self.db.execute(f"PRAGMA max_page_count = {self.budget_pages}").fetchone()[0])

    def over_budget(self, exc: sqlite3.Error) -> bool:
        """True when ``exc`` is SQLITE_FULL from the page budget rather than a full disk."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF != _SQLITE_FULL:
            return False
        if code is None and "full" not in str(exc).lower():
            return False
        limit = int(self.conn.execute("PRAGMA max_page_count").fetchone()[0])
        pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        return limit == self.page_limit and pages + self.txn_pages > limit

    def create_schema(self) -> None:
        """Tables and indexes, and incremental auto-vacuum on a file created without it.

        A file from before the ``wire`` column (the encoded payload) gets it, empty."""
        with self.txn():
            for statement in _DDL:
                self.db.execute(statement)
            if not self.has_wire():
                self.db.execute("ALTER TABLE messages ADD COLUMN wire BLOB")
        if self.db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self.db.executescript("VACUUM;")  # a file created without it, once

    def has_schema(self) -> bool:
        names = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        return {"messages", "meta"} <= names

    def has_wire(self) -> bool:
        """Whether ``messages`` has the ``wire`` column (an older file, read-only: not)."""
        return any(r[1] == "wire" for r in self.conn.execute("PRAGMA table_info(messages)"))

    @contextlib.contextmanager
    def txn(self, durable: bool = True) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error.

        Not ``durable``: committed without waiting for the disk (``synchronous=NORMAL``):
        a power cut may undo it (never half of it), a crash of the process may not, and the
        next durable commit syncs it too (the WAL is written in order)."""
        if not durable:
            self.conn.execute("PRAGMA synchronous = NORMAL")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        finally:
            if not durable:
                self.conn.execute("PRAGMA synchronous = FULL")
        self.checkpoint_if_needed()

    def wal_bytes(self) -> int:
        try:
            return Path(f"{self.path}-wal").stat().st_size
        except FileNotFoundError:
            return 0

    def checkpoint_if_needed(self) -> None:
        """A TRUNCATE checkpoint when the WAL holds more than ``wal_budget``."""
        if self.wal_bytes() > self.wal_budget:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as exc:  # committed anyway; the next commit tries again
                log.info("outbox: checkpoint failed: %s", exc)

    def close(self) -> None:
        self.db.close()

    # -- size -------------------------------------------------------------------------------

    def free_pages(self) -> int:
        return int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])

    def disk_bytes(self) -> int:
        """page_count * page_size plus the sizes of the -wal and -shm files."""
        pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        shm = Path(f"{self.path}-shm")
        return (pages * self.page_size + self.wal_bytes()
                + (shm.stat().st_size if shm.exists() else 0))

    def file_bytes(self) -> int:
        """What the outbox's files take on disk now: the database, -wal, -shm, -journal."""
        total = 0
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total

    def live_bytes(self) -> int:
        """Bytes of the pages in use, as this connection sees them (inside a transaction too)."""
        pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        return (pages - self.free_pages()) * self.page_size

    def over(self, extra_pages: int = 0) -> bool:
        """Live data above the low-water mark (``budget_pages`` minus twice ``room_pages``:
        room for the puts before the next run), or ``extra_pages`` would not fit."""
        if self.live_bytes() > self.low_water:
            return True
        return extra_pages > 0 and (
            self.live_bytes() // self.page_size + extra_pages > self.budget_pages)

    def near_full(self) -> bool:
        """Fewer than ``room_pages`` pages left before the budget (free pages count as left)."""
        return self.live_bytes() // self.page_size > self.budget_pages - self.room_pages

    def row_pages(self, nbytes: int) -> int:
        """Pages one row of ``nbytes`` may dirty: its overflow pages, its table leaf and the
        one a split adds, two index leaves."""
        return -(-nbytes // (self.page_size - 64)) + 4

    def fits(self, nbytes: int) -> bool:
        """Whether a row of ``nbytes`` fits one transaction (larger ones are evicted)."""
        return self.row_pages(nbytes) + DELETE_PAGES <= self.txn_pages - TXN_FIXED_PAGES

    def budget(self) -> TxnBudget:
        """The WAL frames the next transaction may write (``txn_pages``)."""
        return TxnBudget(self.txn_pages - TXN_FIXED_PAGES)

    def shrink(self) -> None:
        """Give freed pages back to the file system: incremental vacuum in transactions of at
        most ``txn_pages`` WAL frames, then a TRUNCATE checkpoint; then the page budget
        applies again (to a file that was above it, too)."""
        step = max(1, (self.txn_pages - TXN_FIXED_PAGES) // 3)  # a moved page, its parent, ptrmap
        try:
            while self.free_pages():
                with self.txn():
                    self.conn.execute(f"PRAGMA incremental_vacuum({step})").fetchall()
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            self.apply_budget()
        except sqlite3.Error as exc:
            if disk_condition(exc) is None:
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            log.info("outbox: could not shrink the file: %s", exc)


class TxnBudget:
    """The pages a transaction may still dirty; ``take`` charges an operation's pages.

    The first operation always fits (one row is at most ``max_row_pages``)."""

    def __init__(self, pages: int) -> None:
        self.left, self.used = pages, 0

    def take(self, pages: int) -> bool:
        """Charge ``pages``; False (charging nothing) when they do not fit and something
        was charged before: commit first."""
        if self.used and pages > self.left:
            return False
        self.left -= pages
        self.used += pages
        return True
