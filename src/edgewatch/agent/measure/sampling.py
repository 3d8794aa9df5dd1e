"""Which frames the monitor measures: a cap on measured frames per second of stream time."""

from __future__ import annotations

import math

TOLERANCE = 1e-4
"""Share of an interval by which a frame may come early and still count as on time
(timestamps such as index / fps, or wall-clock seconds since 1970, are not exact)."""


class RateCap:
    """Lets through at most ``max_fps`` frames per second of stream time (0: every frame).

    Due times lie on a grid, ``anchor + n * interval``, so the measured rate tends to
    ``max_fps`` even when frames do not arrive on it (3 fps under a 2.5 cap measures 2.5 per
    second, not 1.5), and rounding does not accumulate on large timestamps. After a gap of
    more than an interval, or when time goes back by more than an interval (a source
    restarted), the grid restarts at the frame's time. A frame without a finite time is let
    through and leaves the grid alone. Deterministic in stream time, so a replay measures
    the same frames every run.

    ``skip_from <= t < skip_until`` holds for exactly the times the next call would turn
    down without changing anything (NaN bounds: none), so a caller on a hot path can skip
    the call for most frames.
    """

    def __init__(self, max_fps: float) -> None:
        self.interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self._anchor = math.nan
        self._steps = 0
        self.skip_from = self.skip_until = self._late = math.nan

    def __call__(self, t: float) -> bool:
        """Whether the frame at stream time ``t`` is to be measured."""
        if not self.interval or not math.isfinite(t):
            return True
        if self.skip_from <= t < self.skip_until:  # not due yet, or a little jitter back
            return False
        if self.skip_until <= t < self._late:  # due (a little early at most): on the grid
            self._steps += 1
        else:  # the first frame (NaN bounds), a gap, or time went backwards
            self._anchor, self._steps = t, 1
        interval = self.interval
        due = self._anchor + self._steps * interval
        self.skip_from, self.skip_until = due - 2 * interval, due - TOLERANCE * interval
        self._late = due + interval
        return True
