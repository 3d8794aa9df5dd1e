"""Per-frame verdicts on the monitor thread: data-quality faults, the anomaly score and the
no-signal fast path."""

from __future__ import annotations

import time

from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.measure.quality import QualityTracker
from edgewatch.agent.measure.signal import SignalTracker
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import QualityConfig


class FrameChecks:
    """Fills in a measurement's ``faults``, ``anomaly`` and ``signal`` (a no-signal change,
    from ``self.signal``, the SignalTracker of ``quality.no_signal_seconds``); its cost
    counts as monitor time.

    The monitor's ``FrameCheck``; calling the object is the same as ``check``. A Monitor given
    these checks reports their signal changes (and watches a live source's silences with the
    same tracker)."""

    def __init__(self, cfg: QualityConfig, reference: ReferenceProfile) -> None:
        self.quality = QualityTracker(cfg, reference)
        self.anomaly = reference.anomaly
        self.signal = SignalTracker.from_config(cfg)

    def check(self, m: FrameMeasurement) -> None:
        t0 = time.perf_counter()
        m.faults = self.quality.check(m)
        frozen = "frozen" in m.faults
        m.signal = self.signal.frame(m.timestamp, m.faults,
                                     self.quality.frozen_since if frozen else None)
        if self.anomaly is not None and m.thumbnail is not None:
            m.anomaly = self.anomaly.score(m.numeric)
        m.monitor_ms += (time.perf_counter() - t0) * 1e3

    __call__ = check
