"""Aggregating frame measurements into the current window's summary."""

from __future__ import annotations

import numpy as np

from edgewatch.measure import FrameMeasurement
from edgewatch.reference import ReferenceProfile
from edgewatch.summary import WindowSummary


class WindowAccumulator:
    """Adds frame measurements to a WindowSummary counted against the reference's bins."""

    def __init__(self, reference: ReferenceProfile, start: float, end: float) -> None:
        self.summary = WindowSummary.empty(reference, start, end)
        self.unknown_features: set[str] = set()

    def add(self, m: FrameMeasurement) -> None:
        s = self.summary
        s.frames.monitored += 1
        for name, value in m.numeric.items():
            feat = s.numeric.get(name)
            if feat is None:
                self.unknown_features.add(name)
                continue
            values = np.asarray(value, np.float64)
            feat.hist.update(values)
            feat.moments.update(values)
        for name, labels in m.labels.items():
            counts = s.categorical.get(name)
            if counts is not None:
                counts.update(labels)
        lat = s.latency
        if m.timings is not None:
            t = m.timings
            lat["preprocess_ms"].add(t.preprocess_ms)
            lat["inference_ms"].add(t.inference_ms)
            lat["postprocess_ms"].add(t.postprocess_ms)
            lat["total_ms"].add(t.preprocess_ms + t.inference_ms + t.postprocess_ms)
        lat["monitor_ms"].add(m.monitor_ms)
        for fault in m.faults:
            s.quality[fault] = s.quality.get(fault, 0) + 1
            s.quality_onsets.setdefault(fault, m.timestamp)
        s.anomaly.add(m.anomaly)
