"""Bounded disk: the age cap, then the size cap (compaction, then eviction), then shrinking.

``put`` runs ``enforce`` when a cap is exceeded, when fewer than ``room_pages`` pages are
left in the page budget, and to give back the pages acknowledged rows freed once they add
up to ``room_pages`` (``needed``). A write SQLite refused because the page budget is spent
(``OutboxDatabase.over_budget``) runs ``enforce`` with the pages it needs, then retries.

1. Age: ``status`` and ``summary`` rows older than ``max_age_s`` (by ``created``) are
   evicted (``max_age_s <= 0``: no age cap). They are not compacted first (see
   ``compaction``). Alerts never expire.
2. Bytes: while the live pages are above the low-water mark (``database``), summaries
   are compacted.
3. Still too big: eviction, lowest priority first, oldest first, alerts last.

Then ``incremental_vacuum`` and a TRUNCATE checkpoint give the freed pages back, so the
file shrinks. Every transaction stays within ``txn_pages`` WAL frames (``TxnBudget``), so
the cap holds while all this runs. Evicted messages are counted as lost (``loss``) in the
transaction that deletes them, and each step that merged or evicted logs one line (what,
how many rows and messages, bytes freed, why). Not thread-safe on its own: the
``Outbox`` holds its lock around every use.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Callable

from edgewatch.agent.delivery.outbox.compaction import Compactor
from edgewatch.agent.delivery.outbox.database import DELETE_PAGES, OutboxDatabase
from edgewatch.agent.delivery.outbox.loss import LossLedger
from edgewatch.agent.delivery.outbox.rows import BATCH, CapReport
from edgewatch.clock import Clock

log = logging.getLogger(__name__)

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
        """Rows expired, the page budget nearly spent, or ``room_pages`` free pages to
        return."""
        cutoff = self.cutoff()
        database = self._database
        try:
            expired = self._conn.execute(
                "SELECT 1 FROM messages WHERE kind != 'alert' AND created < ? LIMIT 1",
                (cutoff,)).fetchone()
            free = database.free_pages()
            return (expired is not None or database.near_full()
                    or free > database.room_pages)
        except sqlite3.Error as exc:
            self._on_disk_error(exc)
            return False

    def enforce(self, extra_pages: int = 0, spare_alerts: bool = False) -> CapReport:
        """Age eviction, then compaction, then eviction by priority; then shrink the file.

        ``extra_pages``: make room for a row of that many pages too; ``spare_alerts``:
        evict no alert for it (it is not an alert). A disk condition stops the run early
        (``on_disk_error``); what was committed before stays committed and counted.
        """
        compacted, evicted, before = 0, Counter[str](), 0
        try:
            before = self._database.disk_bytes()
            evicted += self._evict_expired()
            compacted = self._compactor.compact(extra_pages)
            evicted += self._evict_to_fit(extra_pages, spare_alerts)
        except sqlite3.Error as exc:
            self._on_disk_error(exc)
        self._database.shrink()
        return CapReport(compacted, dict(evicted), before, self._database.disk_bytes())

    def _evict_expired(self) -> Counter[str]:
        """Evict status and summary rows older than ``max_age_s``; alerts never expire."""
        cutoff = self.cutoff()
        lost: Counter[str] = Counter()
        live, rows_gone, seqs = self._database.live_bytes(), 0, []
        while True:
            with self._database.txn():
                rows = self._conn.execute(
                    "SELECT seq, kind, payload FROM messages WHERE kind != 'alert' "
                    "AND created < ? LIMIT ?", (cutoff, BATCH)).fetchall()
                rows = self._within_budget(rows)
                lost += self._ledger.delete_rows(rows)
            rows_gone += len(rows)
            seqs += [r[0] for r in rows]
            if not rows:
                break
        log_eviction(lost, rows_gone, seqs, live - self._database.live_bytes(),
                     f"older than the age cap ({self.max_age_s:g} s)")
        return lost

    def _within_budget(self, rows: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
        """The first rows whose deletion fits one transaction's WAL budget."""
        budget = self._database.budget()
        return [row for row in rows if budget.take(DELETE_PAGES)]

    def _evict_to_fit(self, extra_pages: int = 0, spare_alerts: bool = False) -> Counter[str]:
        """Evict lowest priority, oldest first (alerts last) until the live data fits."""
        lost: Counter[str] = Counter()
        database = self._database
        live, rows_gone, seqs = database.live_bytes(), 0, []
        while database.over(extra_pages):
            with database.txn():
                rows = self._within_budget(self._eviction_batch(spare_alerts))
                for row in rows:
                    lost += self._ledger.delete_rows([row])
                    rows_gone += 1
                    seqs.append(row[0])
                    if not database.over(extra_pages):
                        break
            if not rows:
                break
        log_eviction(lost, rows_gone, seqs, live - database.live_bytes(),
                     f"over the size cap ({database.max_bytes} bytes)")
        return lost

    def _eviction_batch(self, spare_alerts: bool = False) -> list[tuple[int, str, str]]:
        """The next rows to evict: lowest priority, oldest first; alerts when nothing else is
        (and not ``spare_alerts``).

        Walks the priorities present through the drain index (no scan of the table).
        """
        for alerts in (False,) if spare_alerts else (False, True):
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


def log_eviction(lost: Counter[str], rows: int, seqs: list[int], freed: int,
                 why: str) -> None:
    """One log line for one eviction step: what, how many rows and messages, bytes, why."""
    if not rows:
        return
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(lost.items()))
    log.warning("outbox: evicted %d rows holding %d messages (%s; seqs %d..%d), %d bytes "
                "freed: %s", rows, sum(lost.values()), kinds, min(seqs), max(seqs),
                max(freed, 0), why)
