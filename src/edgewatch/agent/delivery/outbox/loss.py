"""Loss accounting: what the outbox merged away or dropped, counted until someone reports it.

A loss report is ``{"compacted": n, "evicted": {kind: n}, "dropped": {kind: n}, "rejected":
{kind: n}}``: compacted messages ride inside an earlier row (``merged_seqs``); evicted (disk
caps), dropped (memory overflow) and rejected (refused by the broker) ones are lost. The
counters live in the ``meta`` table under ``compacted`` and ``<group>.<kind>``, updated in the
transaction that deletes the rows; counters the disk did not take yet wait in memory
(``unsaved``). A deleted row's own loss report goes back to the counters, for the next one.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

LOSS_GROUPS = ("evicted", "dropped", "rejected")
_LOSS_KEYS = "key = 'compacted' OR " + " OR ".join(f"key LIKE '{g}.%'" for g in LOSS_GROUPS)


def seqs(payload: dict[str, Any]) -> list[int]:
    """Every original seq a (possibly merged) payload stands for."""
    return [int(s) for s in payload.get("merged_seqs") or [payload["seq"]]]


def originals(payload_json: str) -> tuple[int, dict[str, Any] | None]:
    """How many original messages a stored row stands for, and the loss report it carries."""
    if '"merged_seqs"' not in payload_json and '"loss"' not in payload_json:
        return 1, None
    payload = json.loads(payload_json)
    return len(seqs(payload)), payload.get("loss")


def counters(report: dict[str, Any] | None) -> Iterator[tuple[str, int]]:
    """The counter keys and values of a loss report (the inverse of loss_report)."""
    for group, counts in (report or {}).items():
        if isinstance(counts, dict):
            yield from ((f"{group}.{kind}", int(n)) for kind, n in counts.items() if n)
        elif counts:
            yield group, int(counts)


def add_counts(a: Any, b: Any) -> Any:
    """Sum two loss reports (nested dicts of integers; None stands for nothing)."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: add_counts(a.get(k), b.get(k)) for k in sorted({*a, *b})}
    return a + b


def loss_report(pairs: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """A loss report from counter keys ("compacted", "<group>.<kind>") and values."""
    report: dict[str, Any] = {"compacted": 0, **{group: {} for group in LOSS_GROUPS}}
    for key, value in pairs:
        if key == "compacted":
            report["compacted"] += int(value)
        elif value:
            group, kind = key.split(".", 1)
            report[group][kind] = report[group].get(kind, 0) + int(value)
    return report


class LossLedger:
    """The loss counters: in ``meta`` on disk, and in memory until the disk takes them.

    The methods that write run inside the caller's transaction.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.unsaved: Counter[str] = Counter()
        """Loss counters not yet in meta."""

    def count(self, key: str, n: int) -> None:
        """Add ``n`` to the counter ``key`` in meta."""
        if n:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value", (key, n))

    def persist_unsaved(self) -> None:
        """Write the memory counters to meta (``unsaved`` is cleared once that commits)."""
        for key, n in self.unsaved.items():
            self.count(key, n)

    def note(self, key: str, n: int = 1, carried: dict[str, Any] | None = None) -> None:
        """Count lost messages in memory (with the loss report a lost row carried)."""
        self.unsaved.update({key: n, **dict(counters(carried))})

    def take_disk(self) -> dict[str, Any]:
        """Read and reset the loss counters in meta (inside a transaction)."""
        rows = self._conn.execute(f"SELECT key, value FROM meta WHERE {_LOSS_KEYS}").fetchall()
        self._conn.execute(f"DELETE FROM meta WHERE {_LOSS_KEYS}")
        return loss_report(rows)

    def delete_rows(self, rows: list[tuple[int, str, str]],
                    group: str = "evicted") -> Counter[str]:
        """Delete (seq, kind, payload) rows and count their original messages as lost.

        A loss report a deleted row carried goes back to the counters, for the next one.
        """
        lost: Counter[str] = Counter()
        for seq, kind, payload in rows:
            self._conn.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            n, carried = originals(payload)
            lost[kind] += n
            for key, k in counters(carried):
                self.count(key, k)
        for kind, n in lost.items():
            self.count(f"{group}.{kind}", n)
        return lost
