"""Bounded disk: the age cap, then the size cap (compaction, then eviction), then shrinking.

``put`` runs ``enforce`` when a cap is exceeded, and to give back the pages acknowledged
rows freed once they add up to the WAL budget (``needed``).

1. Age: ``status`` and ``summary`` rows older than ``max_age_s`` (by ``created``) are
   evicted (``max_age_s <= 0``: no age cap). They are not compacted first (see
   ``compaction``). Alerts never expire.
2. Bytes: when the file plus its WAL exceed ``max_bytes``, summaries are compacted until
   the live pages are under the low-water mark (``max_bytes`` minus twice the WAL budget;
   the gap is room for the WAL and for the puts before the next run).
3. Still too big: eviction, lowest priority first, oldest first, alerts last.

Then ``incremental_vacuum`` and a TRUNCATE checkpoint give the freed pages back, so the
file shrinks. Evicted messages are counted as lost (``loss``) in the transaction that
deletes them. Not thread-safe on its own: the ``Outbox`` holds its lock around every use.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable

from edgewatch.agent.delivery.outbox.compaction import Compactor
from edgewatch.agent.delivery.outbox.database import OutboxDatabase
from edgewatch.agent.delivery.outbox.loss import LossLedger
from edgewatch.agent.delivery.outbox.rows import BATCH, CapReport
from edgewatch.clock import Clock

OnDiskError = Callable[[sqlite3.Error], None]
"""Told of an SQLite error that stopped a run (enters degraded mode, or raises)."""


class CapEnforcer:
    """Keeps the outbox file within ``max_age_s`` and ``max_bytes``."""

    def __init__(self, database: OutboxDatabase, ledger: LossLedger, compactor: Compactor,
                 *, clock: Clock, max_age_s: float, on_disk_error: OnDiskError) -> None:
        self._database, self._ledger, self._compactor = database, ledger, compactor
        self._conn = database.conn
        self._clock = clock
        self.max_age_s = max_age_s
        self._on_disk_error = on_disk_error

    def cutoff(self) -> float:
        """Rows created before this have expired (``max_age_s <= 0``: nothing expires)."""
        return self._clock.now() - self.max_age_s if self.max_age_s > 0 else float("-inf")

    def needed(self) -> bool:
        """Rows expired, files above ``max_bytes``, or a WAL budget of free pages to return."""
        cutoff = self.cutoff()
        database = self._database
        try:
            expired = self._conn.execute(
                "SELECT 1 FROM messages WHERE kind != 'alert' AND created < ? LIMIT 1",
                (cutoff,)).fetchone()
            free = database.free_pages()
            return (expired is not None or database.disk_bytes() > database.max_bytes
                    or free * database.page_size > database.wal_budget)
        except sqlite3.Error as exc:
            self._on_disk_error(exc)
            return False

    def enforce(self) -> CapReport:
        """Age eviction, then compaction, then eviction by priority; then shrink the file.

        A disk condition stops the run early (``on_disk_error``); what was committed
        before stays committed and counted.
        """
        compacted, evicted, before = 0, Counter[str](), 0
        try:
            before = self._database.disk_bytes()
            evicted += self._evict_expired()
            compacted = self._compactor.compact()
            evicted += self._evict_to_fit()
        except sqlite3.Error as exc:
            self._on_disk_error(exc)
        self._database.shrink()
        return CapReport(compacted, dict(evicted), before, self._database.disk_bytes())

    def _evict_expired(self) -> Counter[str]:
        """Evict status and summary rows older than ``max_age_s``; alerts never expire."""
        cutoff = self.cutoff()
        lost: Counter[str] = Counter()
        while True:
            with self._database.txn():
                rows = self._conn.execute(
                    "SELECT seq, kind, payload FROM messages WHERE kind != 'alert' "
                    "AND created < ? LIMIT ?", (cutoff, BATCH)).fetchall()
                lost += self._ledger.delete_rows(rows)
            if len(rows) < BATCH:
                return lost

    def _evict_to_fit(self) -> Counter[str]:
        """Evict lowest priority, oldest first (alerts last) until the live data fits."""
        lost: Counter[str] = Counter()
        while self._database.over():
            with self._database.txn():
                rows = self._eviction_batch()
                for row in rows:
                    lost += self._ledger.delete_rows([row])
                    if not self._database.over():
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
                rows: list[tuple[int, str, str]] = self._conn.execute(
                    "SELECT seq, kind, payload FROM messages WHERE priority = ? "
                    "AND (kind = 'alert') = ? ORDER BY seq LIMIT ?",
                    (priority, alerts, BATCH)).fetchall()
                if rows:
                    return rows
                floor = priority
        return []
