"""Aggregating frame measurements into the current window's summary.

Values are buffered per feature and counted into the histograms and moments in batches
(vectorised), which keeps the per-frame cost of the monitor thread low.
"""

from __future__ import annotations

import numpy as np

from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary

FLUSH_EVERY = 64
"""Frames buffered before their values are counted."""


class WindowAccumulator:
    """Adds frame measurements to a WindowSummary counted against the reference's bins."""

    def __init__(self, reference: ReferenceProfile, start: float, end: float) -> None:
        self._summary = WindowSummary.empty(reference, start, end)
        self._pending: dict[str, list[float]] = {name: [] for name in self._summary.numeric}
        self._buffered = 0

    @property
    def summary(self) -> WindowSummary:
        """The window so far (buffered values counted first)."""
        self._flush()
        return self._summary

    def add(self, m: FrameMeasurement) -> None:
        s = self._summary
        s.frames.monitored += 1
        for name, value in m.numeric.items():
            buf = self._pending.get(name)
            if buf is None:  # not in the reference: nothing to count it against
                continue
            if isinstance(value, float):
                buf.append(value)
            else:
                buf.extend(np.asarray(value, np.float64).ravel().tolist())
        for name, labels in m.labels.items():
            counts = s.categorical.get(name)
            if counts is not None:
                counts.update(labels)
        self._latency(m)
        for fault in m.faults:
            s.quality[fault] = s.quality.get(fault, 0) + 1
            s.quality_onsets.setdefault(fault, m.timestamp)
        s.anomaly.add(m.anomaly)
        self._buffered += 1
        if self._buffered >= FLUSH_EVERY:
            self._flush()

    def _latency(self, m: FrameMeasurement) -> None:
        lat = self._summary.latency
        if m.timings is not None:
            t = m.timings
            lat["preprocess_ms"].add(t.preprocess_ms)
            lat["inference_ms"].add(t.inference_ms)
            lat["postprocess_ms"].add(t.postprocess_ms)
            lat["total_ms"].add(t.preprocess_ms + t.inference_ms + t.postprocess_ms)
        lat["monitor_ms"].add(m.monitor_ms)

    def _flush(self) -> None:
        if not self._buffered:
            return
        for name, buf in self._pending.items():
            if buf:
                values = np.asarray(buf, np.float64)
                feat = self._summary.numeric[name]
                feat.hist.update(values)
                feat.moments.update(values)
                buf.clear()
        self._buffered = 0
