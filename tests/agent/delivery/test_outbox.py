"""The outbox on real SQLite files: seqs, drain order, caps, a failing disk, threads, crashes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewatch.agent.delivery.outbox import Outbox, OutboxError
from edgewatch.clock import ManualClock
from support.outbox_crash_child import merge_counts, run_campaign

KIB = 1024


def open_outbox(path: Path, clock: ManualClock | None = None, **kw: Any) -> Outbox:
    settings: dict[str, Any] = {
        "device": "cam-1", "boot_id": "boot-a", "clock": clock or ManualClock(),
        "max_bytes": 64 * KIB * KIB, "max_age_s": 7 * 86400.0, "merge": merge_counts,
    }
    settings.update(kw)
    return Outbox(path, **settings)


def summary(i: int, ref: str = "r", pad: int = 0) -> dict[str, Any]:
    return {"reference_id": ref, "window": {"start": 10.0 * i, "end": 10.0 * i + 10},
            "frames": {"seen": i + 1, "dropped": i % 3}, "pad": "x" * pad}


def put_summary(ob: Outbox, i: int, ref: str = "r", pad: int = 0) -> int:
    return ob.put("summary", summary(i, ref, pad), priority=0, window_start=10.0 * i,
                  window_end=10.0 * i + 10)


def file_bytes(path: Path) -> int:
    """The database, its WAL and its -shm (the cap counts all three)."""
    extra = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    return path.stat().st_size + sum(p.stat().st_size for p in extra if p.exists())


def rows_on_disk(path: Path) -> list[tuple[int, str, dict[str, Any]]]:
    with contextlib.closing(sqlite3.connect(str(path))) as conn:
        return [(seq, kind, json.loads(p)) for seq, kind, p in
                conn.execute("SELECT seq, kind, payload FROM messages ORDER BY seq")]


def loss(compacted: int = 0, **groups: dict[str, int]) -> dict[str, Any]:
    """A loss report as take_loss_report returns it."""
    return {"compacted": compacted, "evicted": {}, "dropped": {}, "rejected": {}, **groups}


def at_cap(ob: Outbox, max_bytes: int, **kw: Any) -> Outbox:
    """Reopen a file filled under a larger cap with ``max_bytes`` (and auto_caps off): it
    keeps its size until ``enforce_caps`` gives pages back. Under the cap from the start,
    puts themselves would compact and evict (SQLite refuses to grow the file)."""
    ob.close()
    return open_outbox(ob.path, max_bytes=max_bytes, auto_caps=False, **kw)


def held_seqs(ob: Outbox) -> set[int]:
    """Every original seq still queued (rows, merged_seqs, memory)."""
    held: set[int] = set()
    for row in ob.pending(1_000_000):
        held.update(row.payload.get("merged_seqs") or [row.seq])
    return held


# -- seqs and order ----------------------------------------------------------------------


def test_seq_is_monotonic_across_reopen_acks_and_deletes(tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    with open_outbox(db) as ob:
        seqs = [put_summary(ob, i) for i in range(5)]
        assert seqs == [1, 2, 3, 4, 5]
        for s in seqs:
            ob.ack(s)
        assert ob.pending(10) == []
    with open_outbox(db, boot_id="boot-b") as ob:
        assert ob.last_seq == 5
        seq = ob.put("alert", {"type": "alert", "what": "drift"}, priority=2)
        assert seq == 6
        row = ob.pending(1)[0]
        assert row.payload == {"type": "alert", "what": "drift", "device": "cam-1",
                               "boot_id": "boot-b", "seq": 6}
    with contextlib.closing(sqlite3.connect(str(db))) as conn:
        conn.execute("DELETE FROM messages")  # behind the outbox's back
        conn.commit()
    with open_outbox(db) as ob:
        assert put_summary(ob, 0) == 7


def test_drain_order_alerts_first_then_status_then_summaries_by_seq(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "o.db") as ob:
        s1 = put_summary(ob, 0)
        a1 = ob.put("alert", {"n": 1}, priority=2)
        s2 = put_summary(ob, 1)
        st = ob.put("status", {"cpu": 3}, priority=1)
        a2 = ob.put("alert", {"n": 2}, priority=2)
        s3 = put_summary(ob, 2)
        assert [r.seq for r in ob.pending(10)] == [a1, a2, st, s1, s2, s3]
        assert [r.seq for r in ob.pending(2)] == [a1, a2]
        first = ob.pending(10)[3]
        assert (first.kind, first.priority, first.window_start, first.window_end) == (
            "summary", 0, 0.0, 10.0)


def test_ack_is_idempotent_and_stats_count(tmp_path: Path) -> None:
    clock = ManualClock()
    with open_outbox(tmp_path / "o.db", clock) as ob:
        put_summary(ob, 0)
        clock.advance(5)
        seq = put_summary(ob, 1)
        ob.ack(seq)
        ob.ack(seq)
        ob.ack(12345)
        stats = ob.stats()
        assert (stats.pending, stats.in_memory, stats.degraded) == (1, 0, None)
        assert stats.oldest_created == 1_700_000_000.0
        assert stats.bytes_on_disk >= (tmp_path / "o.db").stat().st_size > 0


def test_bad_input_raises_outbox_error(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "o.db") as ob:
        with pytest.raises(OutboxError, match="kind"):
            ob.put("gossip", {}, priority=0)
        with pytest.raises(OutboxError, match="strict JSON"):
            ob.put("summary", {"x": float("nan")}, priority=0)
        with pytest.raises(OutboxError, match="strict JSON"):
            ob.put("summary", {"x": object()}, priority=0)
    with pytest.raises(OutboxError, match="max_bytes"):
        open_outbox(tmp_path / "p.db", max_bytes=1000)


def test_file_is_wal_incremental_vacuum_synchronous_full(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.db"
    with contextlib.closing(sqlite3.connect(str(legacy))) as conn:
        conn.execute("CREATE TABLE other (x)")  # a file created without auto_vacuum
        conn.commit()
    for path in (tmp_path / "new.db", legacy):
        with open_outbox(path) as ob:
            pragma = {p: ob.db.execute(f"PRAGMA {p}").fetchone()[0]
                      for p in ("journal_mode", "auto_vacuum", "synchronous", "busy_timeout")}
            assert pragma == {"journal_mode": "wal", "auto_vacuum": 2, "synchronous": 2,
                              "busy_timeout": 5000}


# -- caps --------------------------------------------------------------------------------


def test_compaction_merges_consecutive_summaries_and_keeps_every_count(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    ob = open_outbox(db, auto_caps=False)
    seqs = [put_summary(ob, i, pad=900) for i in range(200)]
    alerts = [ob.put("alert", {"n": n}, priority=2) for n in range(3)]
    ob = at_cap(ob, 160 * KIB)
    before = file_bytes(db)
    report = ob.enforce_caps()
    after = file_bytes(db)
    rows = ob.pending(10_000)
    summaries = [r for r in rows if r.kind == "summary"]
    assert report.evicted == {} and report.compacted == 200 - len(summaries) > 0
    assert sorted(s for r in summaries for s in r.payload.get("merged_seqs", [r.seq])) == seqs
    for r in summaries:
        if "merged_seqs" in r.payload:
            assert r.seq == r.payload["merged_seqs"][0] == r.payload["seq"]
            n = len(r.payload["merged_seqs"])
            assert r.payload["window"]["end"] - r.payload["window"]["start"] == 10.0 * n
            assert (r.window_start, r.window_end) == (
                r.payload["window"]["start"], r.payload["window"]["end"])
    assert sum(r.payload["frames"]["seen"] for r in summaries) == sum(range(1, 201))
    assert sum(r.payload["frames"]["dropped"] for r in summaries) == sum(i % 3 for i in
                                                                         range(200))
    assert [r.seq for r in rows if r.kind == "alert"] == alerts
    assert after < before and after <= 160 * KIB
    assert (report.bytes_before, report.bytes_after) == (before, after)
    assert ob.take_loss_report() == loss(report.compacted)
    ob.close()


def test_eviction_after_compaction_spares_alerts_and_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    ob = open_outbox(db, auto_caps=False)
    seqs = [put_summary(ob, i, pad=1500) for i in range(40)]  # one run: compacts
    seqs += [put_summary(ob, i, ref=f"alt-{i % 2}", pad=1500) for i in range(40, 140)]
    status = ob.put("status", {"cpu": 1, "pad": "y" * 1500}, priority=1)
    alerts = [ob.put("alert", {"n": n}, priority=2) for n in range(3)]
    ob = at_cap(ob, 160 * KIB)
    before = file_bytes(db)
    report = ob.enforce_caps()
    held = held_seqs(ob)
    assert report.compacted == 39  # the first run became one row...
    assert report.evicted["summary"] >= 40  # ...which, the oldest, went first
    assert "status" not in report.evicted and {status, *alerts} <= held  # higher priority
    lost = set(seqs) - held
    assert len(lost) == report.evicted["summary"]
    assert lost == set(range(1, min(set(seqs) & held)))  # oldest first
    assert file_bytes(db) < before and file_bytes(db) <= 160 * KIB
    assert ob.take_loss_report() == loss(39, evicted=report.evicted)
    assert ob.take_loss_report() == loss()
    ob.close()


def test_only_alerts_left_are_evicted_oldest_first(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db", auto_caps=False, merge=None)
    alerts = [ob.put("alert", {"n": n, "pad": "z" * 5000}, priority=2) for n in range(30)]
    ob = at_cap(ob, 160 * KIB, merge=None)
    report = ob.enforce_caps()
    kept = [r.seq for r in ob.pending(100)]
    assert report.evicted["alert"] == 30 - len(kept) > 0
    assert kept == alerts[-len(kept):]
    ob.close()


def test_attached_loss_report_is_atomic_and_merged_and_survives_eviction(tmp_path: Path
                                                                          ) -> None:
    ob = open_outbox(tmp_path / "o.db", auto_caps=False, merge=None)
    for n in range(30):
        ob.put("status", {"n": n, "pad": "s" * 5000}, priority=1)
    ob = at_cap(ob, 160 * KIB, merge=None)
    lost = ob.enforce_caps().evicted["status"]
    assert 0 < lost < 30
    carrier = put_summary(ob, 0, ref="a")
    assert ob.pending(100)[-1].payload.get("loss") is None  # only on request
    carrier = ob.put("summary", summary(1, "a"), priority=0, attach_loss=True)
    row = next(r for r in ob.pending(100) if r.seq == carrier)
    assert row.payload["loss"] == loss(evicted={"status": lost})
    assert ob.take_loss_report() == loss()
    ob.ack(carrier - 1)
    for n in range(30):  # push the carrier out: its report goes back to the counters
        ob.put("alert", {"n": n, "pad": "a" * 5000}, priority=2)
    ob.enforce_caps()  # under the cap, the puts themselves evicted too
    assert carrier not in held_seqs(ob)
    evicted = ob.take_loss_report()["evicted"]
    assert evicted["status"] == 30  # the carried `lost` and the rest
    assert evicted["summary"] == 1
    kept_alerts = sum(1 for r in ob.pending(100) if r.kind == "alert")
    assert evicted.get("alert", 0) == 30 - kept_alerts
    ob.close()


def test_merged_rows_carry_both_loss_reports(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db", max_bytes=160 * KIB, auto_caps=False)
    ob.put("status", {"pad": "s" * 120_000}, priority=-1)  # evicted before any summary
    ob.enforce_caps()
    a = ob.put("summary", summary(0, pad=3000), priority=0, attach_loss=True)
    ob.put("status", {"pad": "s" * 120_000}, priority=-1)
    ob.enforce_caps()
    ob.put("summary", summary(1, pad=3000), priority=0, attach_loss=True)
    for i in range(2, 40):
        put_summary(ob, i, pad=3000)
    report = ob.enforce_caps()
    assert report.compacted > 0 and report.evicted == {}
    first = next(r for r in ob.pending(100) if r.seq == a)
    assert first.payload["loss"] == loss(evicted={"status": 2})
    assert first.payload["merged_seqs"][:2] == [a, a + 2]
    ob.close()


def test_age_cap_evicts_old_status_and_summaries_never_alerts(tmp_path: Path) -> None:
    clock = ManualClock()
    ob = open_outbox(tmp_path / "o.db", clock, max_age_s=3600.0, auto_caps=False)
    old = [put_summary(ob, 0), put_summary(ob, 1), ob.put("status", {}, priority=1)]
    old_alert = ob.put("alert", {"n": 1}, priority=2)
    clock.advance(3000)
    young = put_summary(ob, 2)
    assert ob.enforce_caps().evicted == {}
    clock.advance(601)
    report = ob.enforce_caps()
    assert report.evicted == {"summary": 2, "status": 1} and report.compacted == 0
    assert {r.seq for r in ob.pending(10)} == {old_alert, young}
    assert not set(old) & held_seqs(ob)
    clock.advance(10 * 86400)
    assert ob.enforce_caps().evicted == {"summary": 1}
    assert [r.seq for r in ob.pending(10)] == [old_alert]
    assert ob.take_loss_report()["evicted"] == {"summary": 3, "status": 1}
    ob.close()
    with open_outbox(tmp_path / "o.db", clock, max_age_s=0.0, auto_caps=False) as ob:
        put_summary(ob, 3)
        clock.advance(1e9)
        assert ob.enforce_caps().evicted == {}  # 0: no age cap


def test_put_enforces_caps_by_itself_and_the_file_stays_bounded(tmp_path: Path) -> None:
    clock = ManualClock()
    db = tmp_path / "o.db"
    ob = open_outbox(db, clock, max_bytes=160 * KIB, max_age_s=1e6)
    peak = 0
    for i in range(200):
        put_summary(ob, i, ref="r" if i % 3 else f"r{i}", pad=1500)  # runs of two
        if i % 25 == 0:
            ob.put("alert", {"n": i}, priority=2)
        clock.advance(10)
        peak = max(peak, ob.stats().bytes_on_disk, file_bytes(db))
    assert peak <= 160 * KIB
    report = ob.take_loss_report()
    assert report["compacted"] > 0 and report["evicted"]["summary"] > 0
    assert len(held_seqs(ob)) + sum(report["evicted"].values()) == 200 + 8
    assert sum(1 for r in ob.pending(1000) if r.kind == "alert") == 8
    clock.advance(2e6)
    ob.put("alert", {"n": "late"}, priority=2)  # the age cap runs from put too
    assert {r.kind for r in ob.pending(1000)} == {"alert"}
    ob.close()


def test_pages_freed_by_acks_are_given_back(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    ob = open_outbox(db, max_bytes=1024 * KIB)
    for i in range(300):
        put_summary(ob, i, pad=1500)
    full = ob.db.execute("PRAGMA page_count").fetchone()[0]
    for row in ob.pending(1000):
        ob.ack(row.seq)
    # deleting alone does not shrink a SQLite file
    assert ob.db.execute("PRAGMA page_count").fetchone()[0] >= full
    put_summary(ob, 300)  # but the next put returns the free pages
    assert file_bytes(db) < full * 4096 / 8
    assert ob.db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    ob.close()


def test_a_failing_merge_does_not_defeat_the_cap(tmp_path: Path) -> None:
    def broken(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("incompatible")

    db = tmp_path / "o.db"
    ob = open_outbox(db, auto_caps=False, merge=broken)
    for i in range(40):
        put_summary(ob, i, pad=4000)
    ob = at_cap(ob, 160 * KIB, merge=broken)
    report = ob.enforce_caps()
    assert report.compacted == 0 and report.evicted["summary"] > 0
    assert file_bytes(db) <= 160 * KIB
    ob.close()


# -- a failing disk ----------------------------------------------------------------------


def fill_up(ob: Outbox) -> list[int]:
    """Put summaries until the disk refuses one; return every seq put."""
    seqs = []
    for i in range(500):
        seqs.append(put_summary(ob, i, pad=1500))
        if ob.degraded:
            return seqs
    raise AssertionError("the disk never filled up")


def test_full_database_keeps_messages_in_memory_and_flushes_them_later(tmp_path: Path
                                                                        ) -> None:
    db = tmp_path / "o.db"
    ob = open_outbox(db, memory_limit=50)
    pages = ob.db.execute("PRAGMA page_count").fetchone()[0]
    ob.db.execute(f"PRAGMA max_page_count = {pages + 3}")  # SQLite's own "disk is full"
    seqs = fill_up(ob)
    assert "full" in (ob.degraded or "")
    seqs += [put_summary(ob, 1000 + i, pad=1500) for i in range(5)]
    alert = ob.put("alert", {"n": 1}, priority=2)
    seqs.append(alert)
    stats = ob.stats()
    assert stats.in_memory == 7 and stats.pending == len(seqs) and stats.degraded
    assert ob.pending(1)[0].seq == alert  # the publisher still gets it
    ob.ack(alert)
    assert ob.retry() is False
    ob.db.execute("PRAGMA max_page_count = 1073741823")
    assert ob.retry() is True and ob.degraded is None and ob.stats().in_memory == 0
    on_disk = [seq for seq, _, _ in rows_on_disk(db)]
    assert on_disk == [s for s in seqs if s != alert]
    assert put_summary(ob, 2000) == alert + 1
    ob.close()


def test_memory_overflow_drops_oldest_summaries_and_reports_them(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    ob = open_outbox(db, memory_limit=4)
    ob.db.execute("PRAGMA query_only = ON")  # SQLite: "attempt to write a readonly database"
    summaries = [put_summary(ob, i) for i in range(5)]
    alerts = [ob.put("alert", {"n": n}, priority=2) for n in range(2)]
    assert "read-only" in (ob.degraded or "")
    kept = {r.seq for r in ob.pending(10)}
    assert kept == {summaries[3], summaries[4], *alerts}
    ob.db.execute("PRAGMA query_only = OFF")
    seq = put_summary(ob, 9)  # the next put flushes, with the dropped counts
    assert ob.degraded is None
    assert [s for s, _, _ in rows_on_disk(db)] == sorted({*kept, seq})
    assert ob.take_loss_report() == loss(dropped={"summary": 3})
    ob.close()


def test_rejected_messages_leave_and_are_reported(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db")
    seqs = [put_summary(ob, i) for i in range(3)]
    alert = ob.put("alert", {"n": 1}, priority=2)
    ob.reject(alert, "payload format invalid")
    ob.reject(alert, "again")
    ob.db.execute("PRAGMA query_only = ON")
    ob.reject(seqs[0], "not authorized")  # remembered while the disk refuses writes
    ob.db.execute("PRAGMA query_only = OFF")
    assert [r.seq for r in ob.pending(10)] == seqs[1:]
    assert ob.take_loss_report() == loss(rejected={"alert": 1, "summary": 1})
    assert ob.retry() and [r.seq for r in ob.pending(10)] == seqs[1:]
    ob.close()


def test_a_caller_taken_loss_report_is_kept_and_summed(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db", max_bytes=160 * KIB, auto_caps=False)
    ob.put("status", {"pad": "s" * 120_000}, priority=-1)
    ob.enforce_caps()
    a = ob.put("summary", {**summary(0), "loss": ob.take_loss_report()}, priority=0)
    b = ob.put("summary", {**summary(1), "loss": loss(3, dropped={"summary": 2})}, priority=0)
    for i in range(2, 60):
        put_summary(ob, i, pad=3000)
    ob.enforce_caps()
    first = next(r for r in ob.pending(100) if r.seq == a)
    assert b in first.payload["merged_seqs"]
    assert first.payload["loss"] == loss(3, evicted={"status": 1}, dropped={"summary": 2})
    with pytest.raises(OutboxError, match="loss report"):
        ob.put("summary", {"loss": "none"}, priority=0)
    with pytest.raises(OutboxError, match="merged_seqs"):
        ob.put("summary", {"merged_seqs": [1]}, priority=0)
    ob.close()


def test_acks_on_a_read_only_database_are_remembered(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    ob = open_outbox(db)
    seqs = [put_summary(ob, i) for i in range(3)]
    ob.db.execute("PRAGMA query_only = ON")
    ob.ack(seqs[0])
    assert ob.degraded and [r.seq for r in ob.pending(10)] == seqs[1:]
    assert ob.stats().pending == 2
    ob.db.execute("PRAGMA query_only = OFF")
    assert ob.retry()
    assert [s for s, _, _ in rows_on_disk(db)] == seqs[1:]
    ob.close()


def test_other_sqlite_errors_raise_outbox_error(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    ob = open_outbox(db)
    put_summary(ob, 0)
    with contextlib.closing(sqlite3.connect(str(db))) as conn:  # a row the outbox never issued
        conn.execute("INSERT INTO messages (seq, kind, priority, created, payload) "
                     "VALUES (2, 'summary', 0, 0, '{}')")
        conn.commit()
    with pytest.raises(OutboxError, match="UNIQUE"):
        put_summary(ob, 1)
    assert ob.stats().in_memory == 0 and ob.degraded is None
    assert put_summary(ob, 2) == 3
    ob.close()
    (tmp_path / "junk.db").write_bytes(b"not a database" * 1000)
    with pytest.raises(OutboxError, match="cannot open"):
        open_outbox(tmp_path / "junk.db")


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only): a disk that really fills up."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        pytest.skip("mounting a small file system needs root")
    target = tmp_path / "small"
    target.mkdir()
    done = subprocess.run([mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=False)


def test_really_full_file_system(small_filesystem: Path) -> None:
    db = small_filesystem / "o.db"
    filler = small_filesystem / "filler"
    with contextlib.closing(open_outbox(db, max_bytes=64 * KIB * KIB)) as ob:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        seqs = fill_up(ob)
        seqs += [put_summary(ob, 1000 + i) for i in range(3)]
        assert "full" in (ob.degraded or "") and ob.stats().in_memory >= 4
        filler.unlink()
        assert ob.retry()
    with contextlib.closing(sqlite3.connect(str(db))) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [s for s, _, _ in rows_on_disk(db)] == seqs


# -- threads and crashes -----------------------------------------------------------------


def test_monitor_and_publisher_threads_share_the_outbox(tmp_path: Path) -> None:
    ob = open_outbox(tmp_path / "o.db")
    delivered: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            while not (done.is_set() and not ob.pending(1)):
                for row in ob.pending(7):
                    delivered.append(row.seq)
                    ob.ack(row.seq)
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=publisher)
    thread.start()
    put = [put_summary(ob, i) if i % 5 else ob.put("alert", {}, priority=2)
           for i in range(300)]
    done.set()
    thread.join(timeout=30)
    assert not errors and not thread.is_alive()
    assert sorted(set(delivered)) == put and ob.stats().pending == 0
    ob.close()


def test_sigkill_never_corrupts_nor_loses_a_committed_message(tmp_path: Path) -> None:
    result = run_campaign(tmp_path / "crash.db", kills=20, seed=7)
    assert result.kills == 20, result.unexplained
    assert result.integrity == ["ok"] * 20
    assert result.ok, result.unexplained
    assert result.committed > 100 and result.missing == 0


def test_sigkill_during_compaction_and_eviction(tmp_path: Path) -> None:
    result = run_campaign(tmp_path / "crash.db", kills=8, caps=True, seed=11)
    assert result.kills == 8 and result.integrity == ["ok"] * 8
    assert result.ok, result.unexplained
