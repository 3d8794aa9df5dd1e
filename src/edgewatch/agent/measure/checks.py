"""Per-frame verdicts on the monitor thread: data-quality faults and the anomaly score."""

from __future__ import annotations

import time

from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.measure.quality import QualityTracker
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import QualityConfig


class FrameChecks:
    """Fills in a measurement's ``faults`` and ``anomaly``; its cost counts as monitor time.

    The monitor's ``FrameCheck``; calling the object is the same as ``check``."""

    def __init__(self, cfg: QualityConfig, reference: ReferenceProfile) -> None:
        self.quality = QualityTracker(cfg, reference)
        self.anomaly = reference.anomaly

    def check(self, m: FrameMeasurement) -> None:
        t0 = time.perf_counter()
        m.faults = self.quality.check(m)
        if self.anomaly is not None and m.thumbnail is not None:
            m.anomaly = self.anomaly.score(m.numeric)
        m.monitor_ms += (time.perf_counter() - t0) * 1e3

    __call__ = check
