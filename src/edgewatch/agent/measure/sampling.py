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
    """

    def __init__(self, max_fps: float) -> None:
        self.interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self._anchor = math.nan
        self._steps = 0

    def __call__(self, t: float) -> bool:
        """Whether the frame at stream time ``t`` is to be measured."""
        if not self.interval or not math.isfinite(t):
            return True
        early = TOLERANCE * self.interval
        ahead = self._anchor + self._steps * self.interval - t  # NaN before the first frame
        if early < ahead <= 2 * self.interval:  # not due yet, or a little jitter back
            return False
        if -self.interval < ahead <= early:
            self._steps += 1
        else:  # the first frame, a gap, or time went backwards
            self._anchor, self._steps = t, 1
        return True
