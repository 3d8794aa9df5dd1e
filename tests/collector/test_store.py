"""The collector store on real SQLite files and a real PostgreSQL server.

Every test runs on both backends. PostgreSQL tests create their own database ``ew_<hex>``
(dropped afterwards) through ``EDGEWATCH_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and skip when that server is unreachable.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from edgewatch.collector.store import (
    DeviceState,
    Item,
    Quarantined,
    RejectedPayload,
    Store,
    StoreError,
    open_store,
)
from edgewatch.contracts import codec
from edgewatch.contracts.alert import Alert, Span
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.reference import Histogram, Moments, NumericReference, Reference
from edgewatch.contracts.status import Manifest, Status
from edgewatch.contracts.summary import Summary
from support.paths import DATA

EXAMPLE = json.loads((DATA / "summary-example.json").read_text())
T0 = 1767225600.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield s


# --------------------------------------------------------------------------- payloads


def summary(device: str, seq: int, boot: str = "b1", end: float | None = None,
            **extra: Any) -> Summary:
    """The example summary (schema 1 JSON, decoded as the collector does) with transport
    fields; window i ends at T0 + 10 * (i + 1)."""
    p: dict[str, Any] = copy.deepcopy(EXAMPLE)
    end = T0 + 10.0 * (seq + 1) if end is None else end
    p["window"] = {"start": end - 10.0, "end": end, "windows": 1}
    p.update(device=device, boot_id=boot, seq=seq, **extra)
    decoded = codec.decode("summary", json.dumps(p).encode())
    assert isinstance(decoded, Summary)
    return decoded


def alert(device: str, seq: int, alert_id: str, state: str, boot: str = "b1") -> Alert:
    return Alert(id=alert_id, rule="temperature", state=state,  # type: ignore[arg-type]
                 severity="warning", window=Span(T0, T0 + 10.0), since=T0 + seq,
                 updated=T0 + seq, device=device, boot_id=boot, seq=seq)


def birth(device: str, boot: str, when: float, model: str = "m") -> Status:
    manifest = Manifest(device=device, fleet="f", boot_id=boot, started=when, model_name=model,
                        model_sha256="ab" * 32, adapter="ssd", reference_id="r1",
                        config_sha256="cd" * 32)
    return Status(state="online", device=device, boot_id=boot, time=when, manifest=manifest)


def will(device: str, boot: str) -> Status:
    return Status(state="offline", device=device, boot_id=boot, time=None,
                  reason="connection lost")


def state(s: Store, device: str) -> DeviceState:
    found = s.device(device)
    assert found is not None
    return found


# --------------------------------------------------------------------------- ingest


def test_same_message_twice_is_stored_once(store: Store) -> None:
    p = summary("cam-1", 1)
    assert store.ingest("summary", "depot", "cam-1", p, T0) is True
    assert store.ingest("summary", "depot", "cam-1", p, T0 + 5) is False
    assert store.count() == 1
    assert store.keys() == [("cam-1", "b1", 1)]
    assert store.summaries("cam-1") == [p]  # the message comes back as sent


def test_same_seq_in_another_boot_is_another_message(store: Store) -> None:
    assert store.ingest("summary", "f", "cam-1", summary("cam-1", 1, boot="b1"), T0)
    assert store.ingest("summary", "f", "cam-1", summary("cam-1", 1, boot="b2"), T0)
    assert store.keys("summary") == [("cam-1", "b1", 1), ("cam-1", "b2", 1)]


def test_ingest_many_one_result_per_item_in_order(store: Store) -> None:
    items: list[Any] = [
        ("status", "f", "cam-2", birth("cam-2", "b1", T0), T0),
        ("summary", "f", "cam-2", summary("cam-2", 3), T0),
        ("summary", "f", "cam-1", summary("cam-1", 2), T0),
        ("alert", "f", "cam-1", alert("cam-1", 1, "a", "firing"), T0),
        ("summary", "f", "cam-2", summary("cam-2", 3), T0),  # duplicate inside the batch
        ("cmd_result", "f", "cam-1",
         CommandResult(command="ping", id="x", ok=True, device="cam-1", boot_id="b1", seq=3),
         T0),
    ]
    assert store.ingest_many(items) == [True, True, True, True, False, True]
    assert store.ingest_many(items) == [True, False, False, False, False, False]
    assert store.ingest_many([]) == []
    assert (store.count(), store.count("summary"), store.count("alert"),
            store.count("cmd_result")) == (4, 2, 1, 1)
    assert [d.device for d in store.devices()] == ["cam-1", "cam-2"]


def test_a_batch_whose_optional_columns_are_all_null_is_stored(store: Store) -> None:
    """Command results carry no window and no alert id: on PostgreSQL those columns go
    over as arrays of NULLs only."""
    items: list[Any] = [
        ("cmd_result", "f", "cam-1", CommandResult(command="ping", id=f"x{seq}", ok=True,
                                                   device="cam-1", boot_id="b1", seq=seq), T0)
        for seq in (1, 2, 3)]
    assert store.ingest_many(items) == [True, True, True]
    assert store.ingest_many(items) == [False, False, False]
    assert store.keys("cmd_result") == [("cam-1", "b1", 1), ("cam-1", "b1", 2),
                                        ("cam-1", "b1", 3)]


# Contract types do not validate when built in Python: these are what a buggy caller could
# hand the store (the codec never decodes them).
BAD_ALERTS = {
    "no device": dict(device=""),
    "no boot_id": dict(boot_id=""),
    "not the topic's device": dict(device="cam-9"),
    "seq beyond BIGINT": dict(seq=2**63),  # refused by the database itself
    "lone surrogate": dict(boot_id="b\ud800"),  # cannot be encoded as UTF-8
}


@pytest.mark.parametrize("bad", BAD_ALERTS.values(), ids=BAD_ALERTS.keys())
def test_a_message_the_store_cannot_take_is_named(store: Store, bad: dict[str, Any]) -> None:
    good = Item("alert", "f", "cam-1", alert("cam-1", 1, "a", "firing"), T0)
    poison = msgspec.structs.replace(alert("cam-1", 2, "b", "firing"), **bad)
    with pytest.raises(RejectedPayload) as info:
        store.ingest_many([good, Item("alert", "f", "cam-1", poison, T0), good])
    assert info.value.index == 1  # the caller can drop it and ingest the rest
    assert isinstance(info.value, StoreError)
    assert info.value.detail and "\x00" not in info.value.detail
    assert store.count() == 0  # nothing is written
    assert store.devices() == []
    assert store.ingest_many([good, good]) == [True, False]  # the store still works


def test_other_refusals(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown kind"):
        store.ingest("telemetry", "f", "cam-1", summary("cam-1", 1), T0)
    with pytest.raises(RejectedPayload, match="summary message ingested as 'alert'"):
        store.ingest("alert", "f", "cam-1", summary("cam-1", 1), T0)
    with pytest.raises(RejectedPayload, match="not a device message"):
        store.ingest("summary", "f", "cam-1", {"device": "cam-1"}, T0)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="kind"):
        store.count("status")
    with pytest.raises(StoreError, match="limit"):
        store.summaries("cam-1", limit=-1)


def reference(device: str, ref_id: str = "r1") -> Reference:
    hist = Histogram(counts=[3, 5, 2], edges=[0.25, 0.75])
    return Reference(id=ref_id, model_sha256="ab" * 32, model_name="ssd", adapter="ssd",
                     feature_set_version="1", analysis_width=320, frames=10, source="vtest",
                     created=T0, numeric={"brightness": NumericReference(
                         hist, Moments(count=10, mean=0.5), per_frame=True, lag1_autocorr=0.2)},
                     device=device)


def test_references_are_kept_once_per_device_and_id(store: Store) -> None:
    r1 = reference("cam-1")
    assert store.ingest("reference", "f", "cam-1", r1, T0) is True
    assert store.ingest("reference", "f", "cam-1", r1, T0 + 60) is False  # retained: again
    more = [Item("reference", "f", "cam-1", reference("cam-1", "r2"), T0),
            Item("reference", "f", "cam-2", reference("cam-2"), T0)]
    assert store.ingest_many(more) == [True, True]
    assert store.reference("cam-1", "r1") == r1  # bins and histograms, as published
    assert store.reference("cam-2", "r1") == reference("cam-2")
    assert store.reference("cam-2", "r2") is None
    assert store.count() == 0  # not a keyed message


def test_a_refused_item_is_quarantined_with_the_rest_of_its_batch(store: Store) -> None:
    root = "edgewatch/v1/f/cam-1"
    good = [Item("summary", "f", "cam-1", summary("cam-1", s), T0, f"{root}/summary", b"{}")
            for s in (1, 2)]
    poison = Item("alert", "f", "cam-1", msgspec.structs.replace(
        alert("cam-1", 3, "a", "firing"), seq=2**63), T0 + 1, f"{root}/alert", b"x\x9c\x00\xff")
    with pytest.raises(RejectedPayload) as info:
        store.ingest_many([good[0], poison, good[1]])
    assert info.value.index == 1
    kept = Quarantined(poison.received, poison.topic, "store", info.value.detail, poison.raw)
    assert store.ingest_many([good[0], good[1]], [kept]) == [True, True]
    assert store.keys() == [("cam-1", "b1", 1), ("cam-1", "b1", 2)]
    [q] = store.quarantined()
    assert (q.received, q.topic, q.reason, q.payload) == (T0 + 1, f"{root}/alert", "store",
                                                          b"x\x9c\x00\xff")
    assert "range" in q.detail or "too large" in q.detail  # the database's own words
    assert q.id is not None


def test_quarantine_lists_newest_first_and_purges(store: Store) -> None:
    store.quarantine([Quarantined(T0 + i, f"edgewatch/v1/f/cam-{i}/summary", "store",
                                  f"why {i}", bytes([i]) * 3) for i in range(5)])
    assert [q.received for q in store.quarantined()] == [T0 + i for i in (4, 3, 2, 1, 0)]
    assert [q.payload for q in store.quarantined(limit=2)] == [b"\x04" * 3, b"\x03" * 3]
    assert store.purge_quarantine(before=T0 + 2) == 2
    assert [q.received for q in store.quarantined()] == [T0 + 4, T0 + 3, T0 + 2]
    assert store.purge_quarantine() == 3
    assert store.quarantined() == []
    # text any database stores: NUL and lone surrogates are escaped, not refused
    store.quarantine([Quarantined(T0, "t/\x00/\ud800", "store", "d\x00", b"\x00")])
    [q] = store.quarantined()
    assert (q.topic, q.detail, q.payload) == ("t/\\x00/\\ud800", "d\\x00", b"\x00")
    with pytest.raises(StoreError, match="reason"):
        store.quarantine([Quarantined(T0, "t", "json", "", b"")])  # not one of codec.REASONS
    with pytest.raises(StoreError, match="finite"):
        store.purge_quarantine(float("nan"))
    assert len(store.quarantined()) == 1


# --------------------------------------------------------------------------- devices


def test_status_online_then_offline_keeps_the_manifest(store: Store) -> None:
    assert store.ingest("status", "depot", "cam-1", birth("cam-1", "b1", T0, model="m1"), T0 + 1)
    s = state(store, "cam-1")
    assert (s.online, s.fleet, s.status_time, s.last_seen, s.boot_id) == (
        True, "depot", T0, T0 + 1, "b1")
    assert s.manifest == birth("cam-1", "b1", T0, model="m1").manifest
    assert (s.last_summary, s.last_window_end, s.summaries, s.gaps) == (None, None, 0, 0)

    assert store.ingest("status", "depot", "cam-1", will("cam-1", "b1"), T0 + 60)
    s = state(store, "cam-1")
    assert (s.online, s.status_time, s.last_seen, s.boot_id) == (False, T0 + 60, T0 + 1, "b1")
    assert s.manifest is not None and s.manifest.model_name == "m1"  # the will has none

    store.ingest("status", "depot", "cam-1", birth("cam-1", "b2", T0 + 90, model="m2"), T0 + 91)
    s = state(store, "cam-1")
    assert s.manifest is not None
    assert (s.online, s.boot_id, s.manifest.model_name, s.last_seen) == (True, "b2", "m2", T0 + 91)
    assert store.device("nobody") is None


def test_messages_create_the_device_and_bump_last_seen(store: Store) -> None:
    store.ingest("summary", "depot", "cam-1", summary("cam-1", 1), T0 + 10)
    s = state(store, "cam-1")
    assert (s.fleet, s.online, s.last_seen, s.status_time, s.manifest) == (
        "depot", False, T0 + 10, None, None)
    store.ingest("summary", "depot", "cam-1", summary("cam-1", 2), T0 + 5)  # older arrival
    assert state(store, "cam-1").last_seen == T0 + 10
    store.ingest("alert", "depot", "cam-1", alert("cam-1", 3, "a", "firing"), T0 + 20)
    assert state(store, "cam-1").last_seen == T0 + 20


def test_gaps_count_missing_seqs_and_merged_seqs_close_them(store: Store) -> None:
    for seq in (1, 2, 7):
        store.ingest("summary", "f", "cam-1", summary("cam-1", seq), T0)
    assert state(store, "cam-1").gaps == 4  # 3, 4, 5, 6
    store.ingest("alert", "f", "cam-1", alert("cam-1", 6, "a", "firing"), T0)
    assert state(store, "cam-1").gaps == 3
    compacted = summary("cam-1", 3, merged_seqs=[3, 5])  # 4 was an alert, never delivered
    store.ingest("summary", "f", "cam-1", compacted, T0)
    assert state(store, "cam-1").gaps == 1
    store.ingest("alert", "f", "cam-1", alert("cam-1", 4, "b", "firing"), T0)
    assert state(store, "cam-1").gaps == 0
    # seqs go on across boots; a duplicate changes nothing
    store.ingest("summary", "f", "cam-1", summary("cam-1", 8, boot="b2"), T0)
    store.ingest("summary", "f", "cam-1", summary("cam-1", 8, boot="b2"), T0)
    store.ingest("summary", "f", "cam-1", summary("cam-1", 10, boot="b2"), T0)
    assert state(store, "cam-1").gaps == 1
    # a compacted summary's earlier originals also extend the range (and cover it)
    store.ingest("summary", "f", "cam-2", summary("cam-2", 5, merged_seqs=[2, 5]), T0)
    assert state(store, "cam-2").gaps == 2  # 3, 4


def test_active_alerts_follow_each_alerts_latest_message(store: Store) -> None:
    d = "cam-1"
    items: list[Any] = [
        ("alert", "f", d, alert(d, 1, "a", "firing"), T0),
        ("alert", "f", d, alert(d, 2, "a", "acknowledged"), T0),  # a: active
        ("alert", "f", d, alert(d, 3, "b", "firing"), T0),
        ("alert", "f", d, alert(d, 4, "b", "resolved"), T0),      # b: over
        ("alert", "f", d, alert(d, 5, "c", "snoozed"), T0),       # c: active
        ("alert", "f", d, alert(d, 7, "e", "resolved"), T0),      # e: resolved arrives first
        ("alert", "f", d, alert(d, 6, "e", "firing"), T0),
        ("alert", "f", "cam-2", alert("cam-2", 1, "a", "firing"), T0),  # ids are per device
    ]
    for item in items:
        store.ingest(*item)
    assert state(store, d).active_alerts == 2
    assert state(store, "cam-2").active_alerts == 1
    store.ingest("alert", "f", d, alert(d, 8, "a", "resolved"), T0)
    assert state(store, d).active_alerts == 1
    assert [a.seq for a in store.alerts(d)] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert [a.seq for a in store.alerts(d, limit=2)] == [8, 7]
    assert len(store.alerts()) == 9


def test_summaries_newest_window_first_and_last_summary(store: Store) -> None:
    # a backlog drains after live data: seq order is not window order
    ends = {1: T0 + 50, 2: T0 + 30, 3: T0 + 10, 4: T0 + 40, 5: T0 + 20}
    for seq, end in ends.items():
        store.ingest("summary", "f", "cam-1",
                     summary("cam-1", seq, end=end, historical=seq in (3, 5)), T0 + seq)
    got = store.summaries("cam-1")
    assert [p.window.end for p in got] == sorted(ends.values(), reverse=True)
    assert [p.seq for p in store.summaries("cam-1", limit=2)] == [1, 4]
    s = state(store, "cam-1")
    assert s.last_summary is not None
    assert (s.last_summary.seq, s.last_window_end, s.summaries, s.historical) == (
        1, T0 + 50, 5, 2)
    assert store.summaries("nobody") == []


def test_devices_lists_every_device_with_its_counts(store: Store) -> None:
    store.ingest_many([
        ("status", "f1", "cam-1", birth("cam-1", "b1", T0), T0),
        ("summary", "f1", "cam-1", summary("cam-1", 1), T0),
        ("summary", "f1", "cam-1", summary("cam-1", 3), T0),
        ("summary", "f2", "cam-2", summary("cam-2", 1), T0),
        ("alert", "f2", "cam-2", alert("cam-2", 2, "a", "firing"), T0),
    ])
    got = {d.device: d for d in store.devices()}
    assert sorted(got) == ["cam-1", "cam-2"]
    assert (got["cam-1"].summaries, got["cam-1"].gaps, got["cam-1"].online) == (2, 1, True)
    assert (got["cam-2"].summaries, got["cam-2"].active_alerts, got["cam-2"].fleet) == (
        1, 1, "f2")
    assert got["cam-2"] == store.device("cam-2")


def test_store_survives_reopening(store_url: str) -> None:
    with open_store(store_url) as s:
        s.ingest("summary", "f", "cam-1", summary("cam-1", 1), T0)
    with open_store(store_url) as s:
        assert s.ingest("summary", "f", "cam-1", summary("cam-1", 1), T0) is False
        assert s.count() == 1
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.count()


@pytest.mark.parametrize("url", [
    "mysql://user@host/db", "sqlite://relative.db", "collector.db", "sqlite:///",
    "sqlite:////nonexistent-dir/x/collector.db",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(StoreError):
        open_store(url)


def test_relative_sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///sub.db") as s:
        s.ingest("summary", "f", "cam-1", summary("cam-1", 1), T0)
    assert (tmp_path / "sub.db").is_file()


def test_unreachable_postgresql_is_a_store_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError, match=r"cannot connect to postgresql://u:\*\*\*@"):
        open_store("postgresql://u:secret@127.0.0.1:1/db?connect_timeout=2")


# --------------------------------------------------------------------------- concurrency


def message_set(seqs: range, devices: int = 3) -> list[Any]:
    """Small alert messages (cheap to encode) over several devices."""
    return [("alert", "f", f"cam-{d}", alert(f"cam-{d}", s, f"a{s}", "firing"), T0 + s)
            for d in range(devices) for s in seqs]


def ingest_in_batches(url: str, items: list[Any], seed: int, batch: int = 40) -> list[bool]:
    """Open a store and ingest ``items`` shuffled, in batches; one result per item."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    results = [False] * len(items)
    with open_store(url) as s:
        for i in range(0, len(order), batch):
            chunk = order[i:i + batch]
            for j, new in zip(chunk, s.ingest_many([items[k] for k in chunk])):
                results[j] = new
    return results


def _process_worker(url: str, lo: int, hi: int, seed: int) -> int:
    return sum(ingest_in_batches(url, message_set(range(lo, hi)), seed))


def check_exactly_once(s: Store, expected: list[Any], new_total: int) -> None:
    keys = s.keys()
    assert len(keys) == len(set(keys))
    assert set(keys) == {(i[3].device, i[3].boot_id, i[3].seq) for i in expected}
    assert new_total == len(keys)  # exactly one ingest saw each key as new


def test_threads_with_their_own_store_store_each_key_once(store_url: str) -> None:
    first, second = message_set(range(0, 300)), message_set(range(150, 450))
    results: dict[int, list[bool]] = {}
    barrier = threading.Barrier(2)

    def run(n: int, items: list[Any]) -> None:
        barrier.wait()
        results[n] = ingest_in_batches(store_url, items, seed=n)

    threads = [threading.Thread(target=run, args=(n, items))
               for n, items in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [0, 1]
    with open_store(store_url) as s:
        check_exactly_once(s, first + second, sum(results[0]) + sum(results[1]))
        assert s.device("cam-0") is not None


def test_processes_sharing_a_fresh_database_store_each_key_once(store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:  # the workers also create the schema at the same time
        new = pool.starmap(_process_worker, [
            (store_url, 0, 200, 1), (store_url, 100, 300, 2), (store_url, 50, 250, 3)])
    with open_store(store_url) as s:
        check_exactly_once(s, message_set(range(0, 300)), sum(new))


def test_schema_creation_race(store_url: str) -> None:
    n = 6
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    stores: list[Store] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            s = open_store(store_url)
        except BaseException as exc:
            errors.append(exc)
            return
        with lock:
            stores.append(s)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        assert len(stores) == n
        assert [s.ingest("summary", "f", "cam-1", summary("cam-1", 1), T0)
                for s in stores].count(True) == 1
    finally:
        for s in stores:
            s.close()


def test_one_store_shared_by_threads(store_url: str) -> None:
    items = message_set(range(0, 100), devices=2)
    with open_store(store_url) as s:
        results: list[list[bool]] = []

        def run(seed: int) -> None:
            order = items[:]
            random.Random(seed).shuffle(order)
            results.append([s.ingest(*i) for i in order])

        threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        check_exactly_once(s, items, sum(sum(r) for r in results))
