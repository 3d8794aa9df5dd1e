"""The outbox's parts on their own, on real SQLite files: the database (pragmas, budget,
transactions, disk conditions), the queue (drain order, seqs), the memory fallback, loss
accounting, the caps and compaction. ``test_outbox.py`` checks the ``Outbox`` they make."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewatch.agent.delivery.outbox.caps import CapEnforcer
from edgewatch.agent.delivery.outbox.compaction import Compactor
from edgewatch.agent.delivery.outbox.database import (
    MIN_MAX_BYTES,
    OutboxDatabase,
    disk_condition,
)
from edgewatch.agent.delivery.outbox.loss import (
    LossLedger,
    add_counts,
    counters,
    loss_report,
    originals,
    seqs,
)
from edgewatch.agent.delivery.outbox.memory import MemoryFallback
from edgewatch.agent.delivery.outbox.queue import DiskQueue
from edgewatch.agent.delivery.outbox.rows import Entry, drain_key
from edgewatch.clock import ManualClock
from edgewatch.errors import OutboxError

T0 = 1_700_000_000.0


@pytest.fixture
def database(tmp_path: Path) -> Iterator[OutboxDatabase]:
    db = OutboxDatabase(tmp_path / "outbox.db", MIN_MAX_BYTES)
    db.create_schema()
    yield db
    db.close()


def entry(seq: int, kind: str = "summary", priority: int = 0, created: float = T0,
          **payload: Any) -> Entry:
    body = {"seq": seq, "device": "cam-1", "boot_id": "b1", "reference_id": "r1", **payload}
    return Entry(seq, kind, priority, created, None, None, body, False)


def insert(database: OutboxDatabase, *entries: Entry) -> None:
    queue = DiskQueue(database.db)
    with database.txn():
        for e in entries:
            queue.insert(e, e.payload)


def read_only_error(path: Path) -> sqlite3.Error:
    """The error SQLite gives for a write on a read-only connection to ``path``."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', 1)")
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("a read-only connection took a write")


# --------------------------------------------------------------------------- database


def test_the_file_is_durable_wal_with_incremental_vacuum(database: OutboxDatabase) -> None:
    def pragma(name: str) -> Any:
        return database.conn.execute(f"PRAGMA {name}").fetchone()[0]

    assert pragma("journal_mode") == "wal"
    assert pragma("synchronous") == 2  # FULL
    assert pragma("auto_vacuum") == 2  # INCREMENTAL
    assert database.has_schema()


@pytest.mark.parametrize("max_bytes", [MIN_MAX_BYTES, 10 * 2**20, 2**30])
def test_the_budgets_add_up_to_the_cap(tmp_path: Path, max_bytes: int) -> None:
    db = OutboxDatabase(tmp_path / "o.db", max_bytes)
    try:
        frame = db.page_size + 24
        wal = min(max_bytes // 16, 4 * 2**20) // frame * frame
        assert db.wal_budget == (wal if wal >= 2 * frame else 0)
        assert db.wal_max == db.wal_budget + db.txn_pages * frame + 32
        # -shm, the WAL's bound and the page budget add up to the cap
        assert 32 * 1024 + db.wal_max + db.budget_pages * db.page_size <= max_bytes
        assert db.conn.execute("PRAGMA max_page_count").fetchone()[0] == db.budget_pages
    finally:
        db.close()


def test_a_failed_transaction_is_rolled_back(database: OutboxDatabase) -> None:
    with pytest.raises(RuntimeError), database.txn():
        database.conn.execute("INSERT INTO meta (key, value) VALUES ('probe', 1)")
        raise RuntimeError("stop")
    assert database.conn.execute("SELECT * FROM meta WHERE key = 'probe'").fetchall() == []
    assert not database.conn.in_transaction


def test_disk_conditions_are_told_apart_from_other_errors(database: OutboxDatabase) -> None:
    reason = disk_condition(read_only_error(database.path))
    assert reason is not None and "read" in reason and "only" in reason
    assert disk_condition(sqlite3.OperationalError("database or disk is full")) is not None
    with pytest.raises(sqlite3.Error) as caught:
        database.conn.execute("SELEKT 1")
    assert disk_condition(caught.value) is None


# --------------------------------------------------------------------------- queue


def test_pending_is_in_drain_order_and_seqs_never_go_back(database: OutboxDatabase) -> None:
    insert(database, entry(1), entry(2, "alert", 2), entry(3, "status", 1), entry(4))
    queue = DiskQueue(database.db)
    rows = queue.pending(10, [], set())
    assert [r.seq for r in rows] == [2, 3, 1, 4] == [r.seq for r in sorted(rows, key=drain_key)]
    assert [r.seq for r in queue.pending(2, [2], {3})] == [1]
    assert queue.find(3) is not None and queue.find(3)[1] == "status"  # type: ignore[index]
    assert queue.count([1, 2]) == (2, T0)
    with database.txn():
        queue.delete([1, 2, 3, 4])
    assert queue.pending(10, [], set()) == [] and queue.last_seq() == 4


# --------------------------------------------------------------------------- memory


def test_memory_keeps_the_highest_priority_newest_entries(tmp_path: Path) -> None:
    memory = MemoryFallback(tmp_path / "o.db", limit=3)
    memory.entries = [entry(1, "alert", 2), entry(2), entry(3, "status", 1), entry(4),
                      entry(5)]
    dropped = memory.bound()
    assert [e.seq for e in dropped] == [2, 4]
    assert [e.seq for e in memory.entries] == [1, 3, 5]
    assert [r.seq for r in memory.rows(skip={3})] == [1, 5]
    assert memory.take(3) is not None and memory.take(3) is None
    assert memory.remove({1, 99}) == {1}
    assert [e.seq for e in memory.entries] == [5]


def test_memory_enters_degraded_mode_only_for_disk_conditions(tmp_path: Path,
                                                               database: OutboxDatabase) -> None:
    memory = MemoryFallback(database.path, limit=10)
    memory.write_failed(read_only_error(database.path))
    assert memory.degraded is not None
    memory.recovered()
    assert memory.degraded is None
    with pytest.raises(OutboxError, match="UNIQUE constraint failed"):
        memory.write_failed(sqlite3.IntegrityError("UNIQUE constraint failed: messages.seq"))
    assert memory.degraded is None


# --------------------------------------------------------------------------- loss


def test_loss_reports_and_counters_are_inverse() -> None:
    report = {"compacted": 3, "evicted": {"summary": 2}, "dropped": {}, "rejected": {"alert": 1}}
    assert loss_report(counters(report)) == report
    assert dict(counters(None)) == {}
    assert add_counts(report, {"compacted": 1, "evicted": {"status": 4}}) == {
        "compacted": 4, "dropped": {}, "evicted": {"status": 4, "summary": 2},
        "rejected": {"alert": 1}}
    assert add_counts(None, {"compacted": 1}) == {"compacted": 1}


def test_a_row_stands_for_every_seq_it_merged() -> None:
    assert seqs({"seq": 7}) == [7]
    assert seqs({"seq": 7, "merged_seqs": [7, 8, 9]}) == [7, 8, 9]
    assert originals(json.dumps({"seq": 7})) == (1, None)
    carried = {"compacted": 0, "evicted": {"summary": 5}}
    assert originals(json.dumps({"seq": 7, "merged_seqs": [7, 8], "loss": carried})) == (
        2, carried)


def test_deleted_rows_are_counted_with_the_loss_they_carried(database: OutboxDatabase) -> None:
    ledger = LossLedger(database.conn)
    carried = {"compacted": 0, "evicted": {"status": 5}, "dropped": {}, "rejected": {}}
    rows = [(1, "summary", json.dumps({"seq": 1, "merged_seqs": [1, 2, 3], "loss": carried})),
            (4, "alert", json.dumps({"seq": 4}))]
    with database.txn():
        lost = ledger.delete_rows(rows)
    assert lost == {"summary": 3, "alert": 1}
    ledger.note("dropped.summary", 2)
    with database.txn():
        ledger.persist_unsaved()
        report = ledger.take_disk()
    assert report == {"compacted": 0, "evicted": {"alert": 1, "status": 5, "summary": 3},
                      "dropped": {"summary": 2}, "rejected": {}}
    with database.txn():
        assert ledger.take_disk() == loss_report([])


# --------------------------------------------------------------------------- caps


def test_the_age_cap_evicts_old_summaries_and_statuses_but_never_alerts(
        database: OutboxDatabase) -> None:
    clock = ManualClock(T0)
    insert(database, entry(1, created=T0 - 100), entry(2, "status", 1, created=T0 - 100),
           entry(3, "alert", 2, created=T0 - 100), entry(4, created=T0 - 10))
    ledger = LossLedger(database.conn)
    errors: list[sqlite3.Error] = []
    caps = CapEnforcer(database, ledger, Compactor(database, ledger, None), clock=clock,
                       max_age_s=50.0, on_disk_error=errors.append)
    assert caps.cutoff() == T0 - 50.0 and caps.needed()
    report = caps.enforce()
    assert report.evicted == {"summary": 1, "status": 1} and report.compacted == 0
    assert [r.seq for r in DiskQueue(database.db).pending(10, [], set())] == [3, 4]
    assert not caps.needed() and errors == []
    caps.max_age_s = 0.0  # no age cap
    assert caps.cutoff() == float("-inf")


# --------------------------------------------------------------------------- compaction


def merge_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    assert not {"device", "seq", "merged_seqs", "loss"} & {*a, *b}  # transport fields stripped
    return {"reference_id": a["reference_id"], "n": a["n"] + b["n"]}


def test_compaction_merges_neighbours_until_the_data_fits(tmp_path: Path) -> None:
    database = OutboxDatabase(tmp_path / "big.db", 1024 * 1024)  # filled as if a larger cap
    database.create_schema()
    database.low_water = 60 * 1024
    pad = "x" * 3000
    insert(database, *(entry(s, created=T0 + s, n=1, pad=pad) for s in range(1, 41)))
    assert database.over()
    ledger = LossLedger(database.conn)
    merges = Compactor(database, ledger, merge_counts).compact()
    assert merges > 0 and not database.over()
    payloads = [json.loads(r.body) for r in DiskQueue(database.db).pending(100, [], set())]
    assert sum(p["n"] for p in payloads) == 40
    assert [s for p in payloads for s in seqs(p)] == list(range(1, 41))
    assert all(p["seq"] == seqs(p)[0] for p in payloads)
    assert len(payloads) == 40 - merges
    with database.txn():
        assert ledger.take_disk()["compacted"] == merges


def test_summaries_of_other_boots_or_a_failing_merge_stay_apart(tmp_path: Path) -> None:
    database = OutboxDatabase(tmp_path / "big.db", 1024 * 1024)
    database.create_schema()
    database.low_water = 60 * 1024
    pad = "x" * 3000
    insert(database, *(entry(s, n=1, pad=pad, boot_id=f"b{s}") for s in range(1, 41)))
    ledger = LossLedger(database.conn)
    assert Compactor(database, ledger, merge_counts).compact() == 0

    def broken(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("cannot merge")

    with database.txn():
        database.conn.execute("UPDATE messages SET payload = json_set(payload, '$.boot_id', 'b')")
    assert Compactor(database, ledger, broken).compact() == 0
    assert len(DiskQueue(database.db).pending(100, [], set())) == 40


# --------------------------------------------------------------------------- wire payloads


def wire_of(payload: dict[str, Any]) -> bytes:
    """A stand-in for the publisher's backlog encoder (``publisher.backlog_encoder``)."""
    return b"wire:" + json.dumps(payload, sort_keys=True).encode()


def test_rows_keep_their_wire_payload_until_a_merge_replaces_them(tmp_path: Path) -> None:
    database = OutboxDatabase(tmp_path / "big.db", 1024 * 1024)
    database.create_schema()
    queue = DiskQueue(database.db, wire_of)
    with_wire = [entry(s, created=T0 + s, n=1, pad="x" * 3000,  # the last ten never merge
                       reference_id="r1" if s <= 30 else f"r{s}") for s in range(1, 41)]
    for e in with_wire:
        e.wire_bytes = len(wire_of(e.payload))
    without = entry(41, n=1)  # no budget for a wire payload (it would not fit): none
    with database.txn():
        for e in [*with_wire, without]:
            queue.insert(e, e.payload)
    rows = queue.pending(100, [], set())
    assert [r.wire for r in rows] == [wire_of(e.payload) for e in with_wire] + [None]
    assert [r.body for r in rows[:-1]] == [""] * 40  # handed out without: not needed
    assert json.loads(rows[-1].body) == without.payload
    database.low_water = 60 * 1024
    assert Compactor(database, LossLedger(database.conn), merge_counts).compact() > 0
    rows = queue.pending(100, [], set())
    merged = [r for r in rows if r.body and "merged_seqs" in json.loads(r.body)]
    assert merged and all(r.wire is None for r in merged)  # the publisher encodes those
    stored = {seq: json.loads(p) for seq, p in database.conn.execute(
        "SELECT seq, payload FROM messages")}
    plain = [r for r in rows if r not in merged and r.seq != 41]
    assert plain and all(r.wire == wire_of(stored[r.seq]) for r in plain)


def test_acknowledged_rows_are_deleted_by_runs_of_seqs(database: OutboxDatabase) -> None:
    queue = DiskQueue(database.db)
    insert(database, *(entry(s) for s in range(1, 11)))
    with database.txn():
        queue.delete([7, 2, 3, 4, 9, 3])
    assert [r.seq for r in queue.pending(20, [], set())] == [1, 5, 6, 8, 10]


def test_an_older_file_gets_the_wire_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the table as an earlier version created it
        conn.execute("""CREATE TABLE messages (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,
            priority INTEGER NOT NULL, created REAL NOT NULL, window_start REAL,
            window_end REAL, payload TEXT NOT NULL)""")
        conn.execute("INSERT INTO messages VALUES (1, 'summary', 0, 0, NULL, NULL, '{}')")
    conn.close()
    database = OutboxDatabase(path, MIN_MAX_BYTES)
    assert not database.has_wire()
    database.create_schema()
    assert database.has_wire()
    [row] = DiskQueue(database.db).pending(10, [], set())
    assert (row.seq, row.body, row.wire) == (1, "{}", None)
    database.close()


def test_a_transaction_that_need_not_be_durable_leaves_the_file_durable(
        database: OutboxDatabase) -> None:
    def synchronous() -> int:
        return int(database.conn.execute("PRAGMA synchronous").fetchone()[0])

    insert(database, entry(1))
    with database.txn(durable=False):
        assert synchronous() == 1  # NORMAL: the commit does not wait for the disk
        DiskQueue(database.db).delete([1])
    assert synchronous() == 2  # FULL again for what follows
    with pytest.raises(sqlite3.OperationalError), database.txn(durable=False):
        database.conn.execute("DELETE FROM no_such_table")
    assert synchronous() == 2 and not database.conn.in_transaction
    assert database.conn.execute("PRAGMA secure_delete").fetchone()[0] == 2  # FAST


def test_a_merge_the_spent_page_budget_refuses_stays_apart_and_the_others_stand(
        tmp_path: Path) -> None:
    """A merged row can outgrow the two it replaces; with the page budget spent, SQLite
    refuses its page (SQLITE_FULL rolls the whole transaction back): that pair stays apart,
    the merges that fit are made, nothing is lost and the outbox is not degraded."""
    database = OutboxDatabase(tmp_path / "o.db", MIN_MAX_BYTES)
    database.create_schema()
    insert(database, *(entry(s, created=T0 + s, n=1, pad="x" * 100) for s in (1, 2, 3)))
    seq = 3
    while True:  # big rows until the page budget refuses one
        seq += 1
        try:
            insert(database, entry(seq, created=T0 + seq, n=1, pad="x" * 1700))
        except sqlite3.Error as exc:
            assert database.over_budget(exc)
            break

    def outgrowing(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        grow = "y" * 6000 if len(a["pad"]) + len(b["pad"]) > 1000 else ""
        return {"reference_id": a["reference_id"], "n": a["n"] + b["n"],
                "pad": a["pad"] + b["pad"] + grow}

    database.low_water = 0  # merge all it can
    ledger = LossLedger(database.conn)
    assert Compactor(database, ledger, outgrowing).compact() == 2
    payloads = [json.loads(r.body) for r in DiskQueue(database.db).pending(100, [], set())]
    assert [seqs(p) for p in payloads] == [[1, 2, 3], *([s] for s in range(4, seq))]
    assert [len(p["pad"]) for p in payloads] == [300] + [1700] * (seq - 4)
    assert not database.conn.in_transaction
    with database.txn():
        assert ledger.take_disk()["compacted"] == 2
