"""Compaction: consecutive summaries merged pairwise so old history gets coarser, not lost.

Consecutive summaries (adjacent in seq among the summaries, same ``reference_id`` and
``boot_id``) are merged with the injected ``merge``, oldest first, pass after pass, until
the live pages are under the low-water mark or nothing merges. ``merge`` sees the payloads
without the transport fields. The merged row keeps the first row's seq and ``created``,
spans both windows, lists every original seq in ``merged_seqs`` and sums the loss reports
both carried (it has no ``wire`` payload: the publisher encodes it); each merge counts one
more ``compacted`` message (folded into an earlier row, not lost). Compaction keeps the
oldest row's ``created`` and window, so it cannot make stale data young again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from edgewatch.agent.delivery.outbox.database import DELETE_PAGES, OutboxDatabase
from edgewatch.agent.delivery.outbox.loss import LossLedger, add_counts, seqs
from edgewatch.agent.delivery.outbox.queue import COLUMNS
from edgewatch.agent.delivery.outbox.rows import BATCH, TRANSPORT_FIELDS, MergeFn, dumps

log = logging.getLogger(__name__)


def _opt(fn: Callable[[float, float], float], a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return fn(a, b)


class Compactor:
    """Merges consecutive summaries on disk while the live data is over the mark."""

    def __init__(self, database: OutboxDatabase, ledger: LossLedger,
                 merge: MergeFn | None) -> None:
        self._database, self._ledger, self._merge = database, ledger, merge
        self._conn = database.conn
        self._wire = ", wire = NULL" if database.has_wire() else ""
        self._into: set[int] = set()
        """Seqs of the rows the current ``compact`` merged others into (for its log line)."""
        self._apart: set[tuple[int, int]] = set()
        """The pairs (seqs) the current ``compact`` found no page for when merged."""

    def compact(self, extra_pages: int = 0) -> int:
        """Merge consecutive summaries pass after pass until the data fits (with room for
        ``extra_pages`` more) or none merge; logs one line when anything merged.

        Returns the number of merges: each folds one more original message into an
        earlier row (the rows already inside b were counted when they were folded).

        A merged row can outgrow the two it replaces (a's wire payload goes, but
        ``merged_seqs`` grows), and with the page budget spent SQLite may refuse the page
        it needs (SQLITE_FULL, which rolls the whole transaction back): that pair stays
        apart and the transaction is run again without it; eviction makes the room that
        compaction could not.
        """
        total = 0
        database = self._database
        live, self._into, self._apart = database.live_bytes(), set(), set()
        while self._merge is not None and database.over(extra_pages):
            cursor: int | None = -1
            merges = 0
            while cursor is not None and database.over(extra_pages):
                start, pairs = cursor, list[tuple[int, int]]()
                try:
                    with database.txn():
                        cursor = self._merge_batch(cursor, pairs, extra_pages)
                except sqlite3.Error as exc:
                    if not pairs or not database.over_budget(exc):
                        raise
                    self._apart.add(pairs[-1])  # the merge that failed: keep it apart
                    cursor = start
                    continue
                merges += len(pairs)
                self._into.update(a for a, _ in pairs)
            if merges == 0:
                break
            total += merges
        if total:
            log.warning("outbox: merged %d summaries into %d earlier rows (seqs %d..%d), "
                        "%d bytes freed: over the size cap (%d bytes)", total, len(self._into),
                        min(self._into), max(self._into),
                        max(live - database.live_bytes(), 0), database.max_bytes)
        return total

    def _merge_batch(self, cursor: int, pairs: list[tuple[int, int]],
                     extra_pages: int = 0) -> int | None:
        """Pairwise merges after ``cursor`` within one transaction's WAL budget (and at
        most BATCH), each recorded in ``pairs`` (seqs, before the merge is stored); the
        next cursor, or None when no pair is left."""
        budget = self._database.budget()
        for _ in range(BATCH):
            pair = self._conn.execute(
                f"SELECT {COLUMNS} FROM messages WHERE kind = 'summary' AND seq > ? "
                "ORDER BY seq LIMIT 2", (cursor,)).fetchall()
            if len(pair) < 2:
                return None
            a, b = pair
            merged = (None if (a[0], b[0]) in self._apart
                      else self._try_merge(json.loads(a[6]), json.loads(b[6])))
            if merged is None:
                cursor = a[0]  # b may still merge with its successor
                continue
            body = dumps(merged)
            if not budget.take(self._database.row_pages(len(body)) + DELETE_PAGES):
                return a[0] - 1  # the next transaction starts with this pair
            pairs.append((a[0], b[0]))
            self._store_merge(a, b, merged, body)
            cursor = b[0]
            if not self._database.over(extra_pages):
                break
        return cursor

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
                      merged_seqs=seqs(a) + seqs(b))
        if "loss" in a or "loss" in b:
            merged["loss"] = add_counts(a.get("loss", {}), b.get("loss", {}))
        return merged

    def _store_merge(self, a: tuple[Any, ...], b: tuple[Any, ...],
                     merged: dict[str, Any], body: str) -> None:
        """Delete row b (first: its pages take the merged payload when the budget is
        spent), replace row a by the merged payload, count one more compacted."""
        self._conn.execute("DELETE FROM messages WHERE seq = ?", (b[0],))
        self._conn.execute(
            "UPDATE messages SET created = ?, window_start = ?, window_end = ?, payload = ?"
            f"{self._wire} WHERE seq = ?",
            (min(a[3], b[3]), _opt(min, a[4], b[4]), _opt(max, a[5], b[5]), body, a[0]))
        self._ledger.count("compacted", 1)
