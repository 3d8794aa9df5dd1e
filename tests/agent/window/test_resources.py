"""Process and system resources (edgewatch.agent.window.resources), sampled with psutil and
compared with what psutil and the standard library report themselves."""

from __future__ import annotations

import logging
import resource
import shutil
from pathlib import Path

import psutil
import pytest

from edgewatch.agent.window.resources import RESOURCE_FIELDS, ResourceSampler


def test_a_sample_holds_documented_fields_with_plausible_values(tmp_path: Path) -> None:
    sample = ResourceSampler(str(tmp_path)).sample()
    assert set(sample) <= set(RESOURCE_FIELDS)
    assert {"process_cpu_percent", "process_rss_mb", "system_cpu_percent", "memory_percent",
            "disk_percent", "disk_free_mb"} <= set(sample)
    rss = psutil.Process().memory_info().rss / 2**20
    assert sample["process_rss_mb"] == pytest.approx(rss, rel=0.2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    assert sample["process_peak_rss_mb"] == pytest.approx(peak, rel=0.2)
    assert sample["process_peak_rss_mb"] >= sample["process_rss_mb"] * 0.99
    free = shutil.disk_usage(tmp_path).free / 2**20
    assert sample["disk_free_mb"] == pytest.approx(free, rel=0.05)
    assert 0.0 <= sample["memory_percent"] <= 100.0 and 0.0 <= sample["disk_percent"] <= 100.0


def test_cpu_is_measured_since_the_last_sample() -> None:
    sampler = ResourceSampler()
    deadline = psutil.Process().cpu_times().user + 0.2
    while psutil.Process().cpu_times().user < deadline:  # burn 0.2 s of CPU
        sum(i * i for i in range(10_000))
    assert sampler.sample()["process_cpu_percent"] > 1.0  # 0.2 s of CPU in under 20 s


def test_an_unreadable_disk_path_leaves_the_disk_fields_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        sample = ResourceSampler(str(tmp_path / "missing")).sample()
    assert "disk_percent" not in sample and "disk_free_mb" not in sample
    assert "cannot read disk usage" in caplog.text


def test_every_field_has_a_unit_and_a_description() -> None:
    assert all(unit and text.endswith(".") for unit, text in RESOURCE_FIELDS.values())


def test_system_cpu_counts_from_the_first_window_on_the_monitor_thread() -> None:
    """Primed on one thread and read on another (the monitor's), as the agent does."""
    import threading

    sampler = ResourceSampler()  # created on this thread
    deadline = psutil.Process().cpu_times().user + 0.3
    while psutil.Process().cpu_times().user < deadline:  # this process keeps a core busy
        sum(i * i for i in range(10_000))
    seen: list[float] = []
    worker = threading.Thread(target=lambda: seen.append(sampler.sample()["system_cpu_percent"]))
    worker.start()
    worker.join()
    assert seen[0] > 1.0  # 0.3 s of CPU on a machine of a few cores is well over 1 %


class _Growing:
    """A process whose resident memory is above anything the kernel's high-water mark saw."""

    def __init__(self) -> None:
        self.real = psutil.Process()

    def cpu_percent(self, interval: None) -> float:
        return float(self.real.cpu_percent(interval))

    def oneshot(self) -> object:
        return self.real.oneshot()

    def memory_info(self) -> object:
        class Info:
            rss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 * 1.5)

        return Info()


def test_peak_memory_is_never_below_the_current_memory() -> None:
    sampler = ResourceSampler(process=_Growing())  # type: ignore[arg-type]
    first = sampler.sample()
    assert first["process_peak_rss_mb"] >= first["process_rss_mb"]
    assert sampler.sample()["process_peak_rss_mb"] >= first["process_peak_rss_mb"]
