"""Which frames the monitor measures: a cap on measured frames per second of stream time."""

from __future__ import annotations

import math

TIME_EPS = 1e-6
"""Seconds within which a frame counts as on time (timestamps such as index / fps are not
exact)."""


class RateCap:
    """Lets through at most ``max_fps`` frames per second of stream time (0: every frame).

    Due times step by one interval, so the measured rate tends to ``max_fps`` even when
    frames do not arrive on that grid (3 fps under a 2.5 cap measures 2.5 per second, not
    1.5). After a gap of more than an interval, or when time goes backwards (a source
    restarted), the grid restarts at the frame's time. Deterministic in stream time, so a
    replay measures the same frames every run.
    """

    def __init__(self, max_fps: float) -> None:
        self.interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self._due = -math.inf

    def __call__(self, t: float) -> bool:
        """Whether the frame at stream time ``t`` is to be measured."""
        if not self.interval:
            return True
        ahead = self._due - t
        if TIME_EPS < ahead <= self.interval:
            return False
        if -self.interval < ahead <= TIME_EPS:
            self._due += self.interval
        else:  # the first frame, a gap, or time went backwards
            self._due = t + self.interval
        return True
