"""Process and system resources, sampled once per window with psutil."""

from __future__ import annotations

import logging
from typing import Any

import psutil

log = logging.getLogger(__name__)

RESOURCE_FIELDS: dict[str, tuple[str, str]] = {
    "process_cpu_percent": ("%", "CPU used by the agent process since the last window "
                                 "(100 = one full core)."),
    "process_rss_mb": ("MiB", "Resident memory of the agent process."),
    "process_peak_rss_mb": ("MiB", "Peak resident memory of the agent process (Linux)."),
    "system_cpu_percent": ("%", "CPU used by the whole system since the last window."),
    "memory_percent": ("%", "System memory in use."),
    "disk_percent": ("%", "Usage of the filesystem named by resources.disk_path."),
    "disk_free_mb": ("MiB", "Free space on that filesystem."),
    "temperatures_c": ("degrees C", "Hottest reading per sensor group, where the platform "
                                    "exposes sensors (absent otherwise)."),
}


class ResourceSampler:
    """Samples RESOURCE_FIELDS; the process object is injectable for tests.

    System CPU is computed from ``psutil.cpu_times()`` differences kept by the sampler itself:
    ``psutil.cpu_percent(None)`` keeps its last sample per thread (psutil >= 6), so a sampler
    primed on one thread and read on the monitor thread would report 0 % for its first window.
    """

    def __init__(self, disk_path: str = "/", process: psutil.Process | None = None) -> None:
        self.disk_path = disk_path
        self.process = process or psutil.Process()
        self.process.cpu_percent(None)
        self._cpu = _busy_and_total(psutil.cpu_times())
        self._peak_mb = 0.0

    def _system_cpu_percent(self) -> float:
        busy, total = _busy_and_total(psutil.cpu_times())
        d_busy, d_total = busy - self._cpu[0], total - self._cpu[1]
        self._cpu = (busy, total)
        return min(max(100.0 * d_busy / d_total, 0.0), 100.0) if d_total > 0 else 0.0

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with self.process.oneshot():
            out["process_cpu_percent"] = self.process.cpu_percent(None)
            mem = self.process.memory_info()
            out["process_rss_mb"] = mem.rss / 2**20
        peak = _peak_rss_mb()
        if peak is not None:  # the kernel's high-water mark lags: never below what we saw
            self._peak_mb = max(self._peak_mb, peak, out["process_rss_mb"])
            out["process_peak_rss_mb"] = self._peak_mb
        out["system_cpu_percent"] = self._system_cpu_percent()
        out["memory_percent"] = psutil.virtual_memory().percent
        try:
            disk = psutil.disk_usage(self.disk_path)
            out["disk_percent"] = disk.percent
            out["disk_free_mb"] = disk.free / 2**20
        except OSError as exc:
            log.warning("cannot read disk usage of %s: %s", self.disk_path, exc)
        temps = _temperatures()
        if temps:
            out["temperatures_c"] = temps
        return out


def _busy_and_total(t: Any) -> tuple[float, float]:
    """Busy and total CPU seconds of a ``cpu_times()`` reading (psutil's own definition:
    guest time is already inside user time, idle includes I/O wait)."""
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    return total - t.idle - getattr(t, "iowait", 0.0), total


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _temperatures() -> dict[str, float]:
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return {}
    try:
        groups = read()
    except (OSError, RuntimeError):
        return {}
    return {name: max(e.current for e in entries) for name, entries in groups.items() if entries}
