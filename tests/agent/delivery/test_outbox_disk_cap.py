"""The outbox's size cap holds at every instant, measured on the file system while writing
(database, -wal, -shm, -journal), and each merge or eviction is logged once."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from edgewatch.agent.delivery.assembly import wire_summary
from edgewatch.agent.delivery.outbox import Outbox
from edgewatch.clock import ManualClock
from support.outbox_crash_child import merge_counts
from support.paths import DATA

MIB = 2**20


def real_summary(i: int) -> dict[str, Any]:
    """The documented example summary as the agent queues it (schema 2), window ``i``."""
    payload: dict[str, Any] = msgspec.to_builtins(
        wire_summary(json.loads((DATA / "summary-example.json").read_text())))
    payload["window"] = {"start": 10.0 * i, "end": 10.0 * i + 10, "windows": 1}
    return payload


def on_disk(directory: Path) -> int:
    """Every file in the outbox's directory: database, -wal, -shm, -journal, temporaries."""
    total = 0
    for entry in os.scandir(directory):
        with contextlib.suppress(FileNotFoundError):  # a journal deleted meanwhile
            total += entry.stat().st_size
    return total


class Sampler(threading.Thread):
    """Polls the directory's size as fast as it can; keeps the peak."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.directory, self.peak, self.samples = directory, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, on_disk(self.directory))
            self.samples += 1


@pytest.mark.parametrize("cap_mib", [0.15, 1.0])
def test_the_cap_holds_at_every_instant_while_writing(tmp_path: Path, cap_mib: float) -> None:
    cap = int(cap_mib * MIB)
    directory = tmp_path / "outbox"
    directory.mkdir()
    clock = ManualClock()
    sampler = Sampler(directory)
    sampler.start()
    peak_after_put = 0
    puts = 0
    try:  # no publisher: nothing drains, as with the broker down
        ob = Outbox(directory / "outbox.db", device="cam-1", boot_id="b", clock=clock,
                    max_bytes=cap, max_age_s=0.0, merge=merge_counts)
        for i in range(90 if cap_mib < 1 else 140):
            ob.put("summary", real_summary(i), window_start=10.0 * i,
                   window_end=10.0 * i + 10, attach_loss=i % 10 == 0)
            puts += 1
            if i % 9 == 0:
                ob.put("alert", {"type": "alert", "n": i, "pad": "a" * 400})
                puts += 1
            if i % 20 == 0:
                ob.put("status", {"type": "status", "n": i})
                puts += 1
            if i % 30 == 29:  # a burst of acks, then the next put gives the pages back
                ob.ack_many(r.seq for r in ob.pending(5))
            peak_after_put = max(peak_after_put, on_disk(directory))
            clock.advance(10)
        report = ob.take_loss_report()
        ob.close()
    finally:
        sampler.done.set()
        sampler.join(10)
    assert sampler.samples > 100
    assert report["compacted"] > 0  # the cap was reached and worked for
    assert peak_after_put <= cap, f"peak after a put {peak_after_put} > cap {cap}"
    assert sampler.peak <= cap, f"sampled peak {sampler.peak} > cap {cap}"


def test_merges_and_evictions_are_logged_once_per_event_with_counts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edgewatch.agent.delivery.outbox")
    ob = Outbox(tmp_path / "o.db", device="cam-1", boot_id="b", clock=ManualClock(),
                max_bytes=int(0.15 * MIB), max_age_s=0.0, merge=merge_counts)
    for i in range(12):  # one run of summaries: merged
        ob.put("summary", real_summary(i))
    for i in range(12):  # other references: nothing merges, the oldest are evicted
        ob.put("summary", {**real_summary(100 + i), "reference_id": f"other-{i}"})
    ob.put("status", {"pad": "s" * 200_000})  # too large for the cap: evicted at once
    report = ob.take_loss_report()
    ob.close()
    merged = [r.getMessage() for r in caplog.records if "outbox: merged" in r.getMessage()]
    evicted = [r.getMessage() for r in caplog.records if "outbox: evicted" in r.getMessage()]
    assert merged and evicted
    assert len(caplog.records) == len(merged) + len(evicted)  # nothing else, no repeats
    n_merged = sum(int(re.search(r"merged (\d+) summaries", m)[1]) for m in merged)  # type: ignore[index]
    assert n_merged == report["compacted"] > 0
    per_kind: dict[str, int] = {}
    for line in evicted:
        assert re.search(r"\d+ bytes freed: \S", line), line
        for kind, n in re.findall(r"(alert|status|summary): (\d+)", line):
            per_kind[kind] = per_kind.get(kind, 0) + int(n)
    assert per_kind == report["evicted"] and per_kind["status"] == 1
    assert any("larger than the size cap" in line for line in evicted)
    assert all("over the size cap" in line for line in merged)
