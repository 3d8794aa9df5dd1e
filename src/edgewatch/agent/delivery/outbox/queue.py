"""The durable queue: the ``messages`` table and the seq counter in ``meta``.

``insert`` commits a message under its seq and raises ``meta.last_seq`` with it, so seqs
never go back and are never reused, even after a row is acknowledged, evicted or compacted
away. ``pending`` reads rows in drain order (higher priority first, then by seq) through
the drain index. The writes run inside the caller's transaction; not thread-safe on its
own: the ``Outbox`` holds its lock around every use.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from typing import Any

from edgewatch.agent.delivery.outbox.rows import Entry, OutboxRow, dumps

COLUMNS = "seq, kind, priority, created, window_start, window_end, payload"


class DiskQueue:
    """Rows of the ``messages`` table: insert, read in drain order, delete."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._conn: sqlite3.Connection = db.conn

    def last_seq(self) -> int:
        """The highest seq ever committed (``meta.last_seq``, or a row's if higher)."""
        meta = self.db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0]
        rows = self.db.execute("SELECT MAX(seq) FROM messages").fetchone()[0]
        return max(int(meta), int(rows or 0))

    def insert(self, entry: Entry, payload: dict[str, Any]) -> None:
        """Store an entry with this payload and raise ``meta.last_seq`` to its seq."""
        self._conn.execute(
            f"INSERT INTO messages ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.seq, entry.kind, entry.priority, entry.created, entry.window_start,
             entry.window_end, dumps(payload)))
        self._conn.execute("UPDATE meta SET value = MAX(value, ?) WHERE key = 'last_seq'",
                           (entry.seq,))

    def pending(self, limit: int, skip: list[int], acked: Collection[int]) -> list[OutboxRow]:
        """Up to ``limit`` rows in drain order, but for the seqs in ``skip`` and ``acked``."""
        where = f"WHERE seq NOT IN ({','.join('?' * len(skip))})" if skip else ""
        rows = self.db.query(
            f"SELECT {COLUMNS} FROM messages {where} ORDER BY priority DESC, seq "
            "LIMIT ?", [*skip, limit])
        return [OutboxRow(r["seq"], r["kind"], r["priority"], r["created"],
                          r["payload"], r["window_start"], r["window_end"])
                for r in rows if r["seq"] not in acked]

    def delete(self, seqs: Iterable[int]) -> None:
        self._conn.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in seqs])

    def find(self, seq: int) -> tuple[int, str, str] | None:
        """The (seq, kind, payload) of a row, or None."""
        row: tuple[int, str, str] | None = self._conn.execute(
            "SELECT seq, kind, payload FROM messages WHERE seq = ?", (seq,)).fetchone()
        return row

    def count(self, excluding: list[int]) -> tuple[int, float | None]:
        """How many rows there are, but for the seqs in ``excluding``, and the oldest
        ``created`` of them all."""
        count, oldest = self._conn.execute(
            "SELECT COUNT(*), MIN(created) FROM messages").fetchone()
        unacked = self._conn.execute(
            f"SELECT COUNT(*) FROM messages WHERE seq IN ({','.join('?' * len(excluding))})",
            excluding).fetchone()[0] if excluding else 0
        return count - unacked, oldest
