"""The durable queue: the ``messages`` table and the seq counter in ``meta``.

``insert`` commits a message under its seq and raises ``meta.last_seq`` with it, so seqs
never go back and are never reused, even after a row is acknowledged, evicted or compacted
away. ``pending`` reads rows in drain order (higher priority first, then by seq) through
the drain index. With a ``WireFn``, a row is stored with its payload already encoded as the
publisher sends it from a backlog (``wire``), so draining a backlog costs no encoding. The
writes run inside the caller's transaction; not thread-safe on its own: the ``Outbox``
holds its lock around every use.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from typing import Any

import msgspec

from edgewatch.agent.delivery.outbox.rows import Entry, OutboxRow, WireFn, dumps

COLUMNS = "seq, kind, priority, created, window_start, window_end, payload"


class DiskQueue:
    """Rows of the ``messages`` table: insert, read in drain order, delete."""

    def __init__(self, db: sqlite3.Connection, wire: WireFn | None = None,
                 has_wire: bool = True) -> None:
        self.db = self._conn = db
        self._wire = wire if has_wire else None
        self._select = (  # a row with its wire payload comes without its body: not needed
            "SELECT seq, kind, priority, created, window_start, window_end, "
            "CASE WHEN wire IS NULL THEN payload ELSE '' END, wire FROM messages" if has_wire
            else f"SELECT {COLUMNS}, NULL FROM messages")

    def last_seq(self) -> int:
        """The highest seq ever committed (``meta.last_seq``, or a row's if higher)."""
        meta = self.db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0]
        rows = self.db.execute("SELECT MAX(seq) FROM messages").fetchone()[0]
        return max(int(meta), int(rows or 0))

    def insert(self, entry: Entry, payload: dict[str, Any]) -> None:
        """Store an entry with this payload (and its wire payload, if it has a budget for
        one and keeps within it) and raise ``meta.last_seq`` to its seq."""
        columns, values = COLUMNS, [entry.seq, entry.kind, entry.priority, entry.created,
                                    entry.window_start, entry.window_end, dumps(payload)]
        wire = self._encode(payload) if entry.wire_bytes else None
        if wire is not None and len(wire) <= entry.wire_bytes:
            columns, values = f"{COLUMNS}, wire", [*values, wire]
        self._conn.execute(
            f"INSERT INTO messages ({columns}) VALUES ({', '.join('?' * len(values))})",
            values)
        self._conn.execute("UPDATE meta SET value = MAX(value, ?) WHERE key = 'last_seq'",
                           (entry.seq,))

    def _encode(self, payload: dict[str, Any]) -> bytes | None:
        """The wire payload, or None (the publisher encodes the row when it sends it)."""
        if self._wire is None:
            return None
        try:
            return self._wire(payload)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            return None  # the outbox checked it encodes when it was put: never seen

    def pending(self, limit: int, skip: list[int], acked: Collection[int]) -> list[OutboxRow]:
        """Up to ``limit`` rows in drain order, but for the seqs in ``skip`` and ``acked``."""
        where = f"WHERE seq NOT IN ({','.join('?' * len(skip))})" if skip else ""
        rows = self._conn.execute(
            f"{self._select} {where} ORDER BY priority DESC, seq LIMIT ?", [*skip, limit])
        return [OutboxRow(seq, kind, priority, created, payload, start, end, wire)
                for seq, kind, priority, created, start, end, payload, wire in rows
                if seq not in acked]

    def delete(self, seqs: Iterable[int]) -> None:
        """Delete these rows: one statement per run of consecutive seqs (a drain acks
        runs)."""
        runs: list[list[int]] = []
        for seq in sorted(set(seqs)):
            if runs and seq == runs[-1][1] + 1:
                runs[-1][1] = seq
            else:
                runs.append([seq, seq])
        self._conn.executemany("DELETE FROM messages WHERE seq BETWEEN ? AND ?", runs)

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
