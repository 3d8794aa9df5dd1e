"""Retention on real SQLite files and a real PostgreSQL: old windows rolled up hourly then
daily with exact merges (counts add, moments equal numpy's over the combined data), gaps
and fleet views unchanged, idempotent, safe with two pruners and with late messages."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from edgewatch.clock import ManualClock
from edgewatch.collector.fleet import fleet_histograms
from edgewatch.collector.retention import RetentionThread, policy, prune
from edgewatch.collector.rollup import merge_summaries
from edgewatch.collector.store import Store, StoreError, open_store
from edgewatch.collector.store.retention import DAY, Retention, is_rollup
from edgewatch.config.collector import RetentionConfig, parse_collector_config
from edgewatch.contracts import codec
from edgewatch.contracts.alert import Alert, Span
from edgewatch.contracts.summary import Drift, Summary
from edgewatch.errors import ConfigError, StatsError
from support.paths import DATA

EXAMPLE = json.loads((DATA / "summary-example.json").read_text())
H0 = 1767225600.0  # 2026-01-01T00:00:00Z, an hour and a day boundary
DEVICE = "cam-1"
GAP = 50  # no window carries this seq: one gap


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield s


def values(i: int) -> np.ndarray:
    """The box_area values of window ``i`` (known data, so the moments are known)."""
    return np.random.default_rng(i).normal(0.006 + 1e-5 * i, 0.002, size=20 + i % 7)


def seq_of(i: int) -> int:
    return i + 1 if i + 1 < GAP else i + 2


def window(i: int, start: float = H0, seconds: float = 60.0, drift: str | None = None,
           seq: int | None = None) -> Summary:
    """The example summary (schema 1 JSON, decoded as the collector does) as window ``i``
    of a minute, with box_area's moments from :func:`values` and distinct counts."""
    p: dict[str, Any] = copy.deepcopy(EXAMPLE)
    p["window"] = {"start": start + seconds * i, "end": start + seconds * (i + 1),
                   "windows": 1}
    p.update(device=DEVICE, boot_id="b1" if i < 70 else "b2",
             seq=seq_of(i) if seq is None else seq)
    p["frames"]["seen"] = 100 + i
    p["features"]["box_area"]["counts"] = [(i * 7 + k) % 11 for k in range(23)]
    p["quality"] = {"blurred": i % 3}
    decoded = codec.decode("summary", json.dumps(p).encode())
    assert isinstance(decoded, Summary)
    x = values(i)
    feat = msgspec.structs.replace(
        decoded.features["box_area"], n=x.size, mean=float(x.mean()),
        m2=float(((x - x.mean()) ** 2).sum()), min=float(x.min()), max=float(x.max()))
    out = msgspec.structs.replace(decoded, features={**decoded.features, "box_area": feat})
    if drift is not None:
        out = msgspec.structs.replace(out, drift=Drift(severity=drift))  # type: ignore[arg-type]
    return out


def fill(store: Store, n: int = 120) -> list[Summary]:
    windows = [window(i, drift="drift" if i == 30 else "ok") for i in range(n)]
    assert all(store.ingest_many([("summary", "f", DEVICE, w, w.window.end + 1.0)
                                  for w in windows]))
    return windows


def hist(summaries: list[Summary]) -> dict[str, Any]:
    w = fleet_histograms(summaries)[EXAMPLE["reference_id"]]
    return {"features": w.features, "missing": w.missing, "labels": w.labels,
            "windows": w.windows, "start": w.start, "end": w.end}


POLICY = Retention(raw_s=7 * DAY, hourly_s=90 * DAY, daily_s=730 * DAY, alerts_s=365 * DAY)


def test_hourly_rollups_are_exact(store: Store) -> None:
    originals = fill(store)
    before = hist(store.summaries(DEVICE, 1000))
    gaps = store.device(DEVICE).gaps  # type: ignore[union-attr]
    assert gaps == 1

    report = store.prune(POLICY, H0 + 8 * DAY)
    assert (report.hourly, report.daily, report.merged) == (2, 0, 120)
    rolled = store.summaries(DEVICE, 1000)
    assert [s.window.windows for s in rolled] == [60, 60]
    assert all(is_rollup(s.boot_id) for s in rolled)
    for hour, s in zip((1, 0), rolled):  # newest first
        part = originals[60 * hour:60 * (hour + 1)]
        assert (s.window.start, s.window.end) == (H0 + 3600 * hour, H0 + 3600 * (hour + 1))
        assert s.merged_seqs == sorted(w.seq for w in part)
        for name in s.features:
            assert s.features[name].counts == list(np.sum(
                [w.features[name].counts for w in part], axis=0))
            assert s.features[name].n == sum(w.features[name].n for w in part)
        data = np.concatenate([values(i) for i in range(60 * hour, 60 * (hour + 1))])
        f = s.features["box_area"]
        assert f.mean == pytest.approx(data.mean(), rel=1e-12)
        assert np.sqrt(f.m2 / (f.n - 1)) == pytest.approx(data.std(ddof=1), rel=1e-9)
        assert (f.min, f.max) == (data.min(), data.max())
        assert s.frames.seen == sum(w.frames.seen for w in part)
        assert s.quality == {"blurred": sum(w.quality["blurred"] for w in part)}
        for stage, sk in s.latency.items():
            assert sk.n == sum(w.latency[stage].n for w in part)
            assert sum(sk.counts) == sum(sum(w.latency[stage].counts) for w in part)
        assert s.anomaly.scored == sum(w.anomaly.scored for w in part)
        assert s.labels["classes"].counts == {
            k: sum(w.labels["classes"].counts.get(k, 0) for w in part)
            for k in s.labels["classes"].counts}
    # the worst verdict of the hour is kept: window 30 drifted
    assert [s.drift.severity for s in rolled] == ["ok", "drift"]  # type: ignore[union-attr]
    assert hist(rolled) == before  # fleet views unchanged
    state = store.device(DEVICE)
    assert state is not None and state.gaps == gaps  # rolled seqs still count as present
    assert state.last_summary == rolled[0] and state.summaries == 2

    again = store.prune(POLICY, H0 + 8 * DAY)  # idempotent
    assert (again.hourly, again.merged) == (0, 0)
    assert store.summaries(DEVICE, 1000) == rolled


def test_daily_rollups_then_expiry(store: Store) -> None:
    fill(store)
    before = hist(store.summaries(DEVICE, 1000))
    store.prune(POLICY, H0 + 8 * DAY)
    report = store.prune(POLICY, H0 + 91 * DAY)
    assert (report.daily, report.merged) == (1, 2)
    [day] = store.summaries(DEVICE, 1000)
    assert day.window.windows == 120 and day.boot_id == f"rollup:day:{int(H0)}"
    assert hist([day]) == before
    assert store.device(DEVICE).gaps == 1  # type: ignore[union-attr]
    gone = store.prune(POLICY, H0 + 731 * DAY)
    assert gone.expired == 1 and store.summaries(DEVICE) == []


def test_raw_windows_straight_to_daily(store: Store) -> None:
    """A store pruned for the first time long after: windows go straight to days."""
    fill(store)
    before = hist(store.summaries(DEVICE, 1000))
    report = store.prune(POLICY, H0 + 100 * DAY)
    assert (report.hourly, report.daily, report.merged) == (0, 1, 120)
    assert hist(store.summaries(DEVICE, 1000)) == before


def test_late_and_duplicate_windows(store: Store) -> None:
    """A late window of a rolled-up hour stays raw until the next pass merges it; a late
    copy of a window the rollup holds is dropped, not counted twice."""
    originals = fill(store, 60)
    store.prune(POLICY, H0 + 8 * DAY)
    late = window(59, seq=500)  # a new window (seq) for the same hour
    late = msgspec.structs.replace(late, window=msgspec.structs.replace(
        late.window, start=H0 + 3590, end=H0 + 3600))
    copy5 = originals[5]
    assert store.ingest("summary", "f", DEVICE, late, H0 + 8 * DAY)
    assert store.ingest("summary", "f", DEVICE, copy5, H0 + 8 * DAY)  # its row is gone
    assert len(store.summaries(DEVICE, 100)) == 3  # kept raw for now
    report = store.prune(POLICY, H0 + 8 * DAY + 3600)
    assert (report.hourly, report.merged, report.duplicates) == (1, 2, 1)
    [s] = store.summaries(DEVICE, 100)
    assert s.window.windows == 61 and 500 in (s.merged_seqs or [])
    assert hist([s]) == hist([*originals, late])


def test_a_dry_run_changes_nothing(store: Store) -> None:
    fill(store)
    before = store.keys()
    report = store.prune(POLICY, H0 + 8 * DAY, dry_run=True)
    assert report.dry_run and (report.hourly, report.merged) == (2, 120)
    assert store.keys() == before
    assert "would prune" in report.text()


def test_two_pruners_at_once_do_the_work_once(store_url: str) -> None:
    with open_store(store_url) as s:
        originals = fill(s)
    stores = [open_store(store_url) for _ in range(2)]
    errors: list[BaseException] = []

    def run(st: Store) -> None:
        try:
            st.prune(POLICY, H0 + 8 * DAY)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(st,)) for st in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for st in stores:
        st.close()
    assert errors == []
    with open_store(store_url) as s:
        rolled = s.summaries(DEVICE, 1000)
        assert [r.window.windows for r in rolled] == [60, 60]
        assert hist(rolled) == hist(originals)


def alert(seq: int, alert_id: str, state: str) -> Alert:
    return Alert(id=alert_id, rule="temperature", state=state,  # type: ignore[arg-type]
                 severity="warning", window=Span(H0, H0 + 10.0), since=H0, updated=H0,
                 device=DEVICE, boot_id="b9", seq=seq)


def test_old_alerts_go_but_active_ones_stay(store: Store) -> None:
    items: list[Any] = [("alert", "f", DEVICE, alert(1000, "a", "firing"), H0),
                        ("alert", "f", DEVICE, alert(1001, "a", "resolved"), H0),
                        ("alert", "f", DEVICE, alert(1002, "b", "firing"), H0),
                        ("alert", "f", DEVICE, alert(1003, "c", "firing"), H0 + 400 * DAY)]
    store.ingest_many(items)
    assert store.device(DEVICE).gaps == 0  # type: ignore[union-attr]
    report = store.prune(POLICY, H0 + 366 * DAY)
    assert report.alerts == 2
    assert sorted(a.seq for a in store.alerts(DEVICE)) == [1002, 1003]
    assert store.device(DEVICE).gaps == 0  # type: ignore[union-attr]


def test_old_quarantine_is_purged(store: Store) -> None:
    from edgewatch.collector.store import Quarantined

    store.quarantine([Quarantined(H0, "t", "store", "d", b"x"),
                      Quarantined(H0 + 40 * DAY, "t", "store", "d", b"y")])
    assert store.prune(POLICY, H0 + 31 * DAY).quarantine == 1
    assert [q.payload for q in store.quarantined()] == [b"y"]


def test_merge_refuses_other_references_and_keeps_the_worst_verdict() -> None:
    a, b = window(0, drift="warning"), window(1, drift="ok")
    m = merge_summaries([b, a], device=DEVICE, boot_id="x", seq=1)
    assert m.drift is not None and m.drift.severity == "warning"
    assert m.merged_seqs == [1, 2] and m.window.windows == 2
    other = msgspec.structs.replace(b, reference_id="other")
    with pytest.raises(StatsError):
        merge_summaries([a, other], device=DEVICE, boot_id="x", seq=1)


def test_retention_config(tmp_path: Path) -> None:
    cfg = parse_collector_config({"retention": {"raw_days": 1, "hourly_days": 2,
                                                "daily_days": 0}})
    p = policy(cfg.retention)
    assert (p.raw_s, p.hourly_s, p.daily_s) == (DAY, 2 * DAY, 0.0)
    assert parse_collector_config({}).retention == RetentionConfig()
    with pytest.raises(ConfigError):
        parse_collector_config({"retention": {"raw_days": 10, "hourly_days": 2}})
    with pytest.raises(ConfigError):
        parse_collector_config({"retention": {"daily_days": 30}})
    with pytest.raises(StoreError):
        Retention(raw_s=2.0, hourly_s=1.0)


def test_the_thread_prunes_periodically_with_its_clock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with open_store(url) as s:
        fill(s)
    clock = ManualClock(H0 + 8 * DAY)
    thread = RetentionThread(url, RetentionConfig(interval_s=0.05), clock)
    thread.start()
    try:
        for _ in range(200):
            if thread.passes:
                break
            threading.Event().wait(0.05)
    finally:
        thread.close()
    assert thread.passes >= 1 and thread.failures == 0
    with open_store(url) as s:
        assert len(s.summaries(DEVICE, 1000)) == 2
        assert prune(s, RetentionConfig(), clock.now()).merged == 0
