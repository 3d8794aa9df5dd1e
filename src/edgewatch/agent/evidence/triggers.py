"""What makes a frame evidence, and how much evidence an hour and a day may hold.

- ``alert``: an alert of a watched metric fires (``AlertTrigger``): the pre-trigger ring
  and the next ``post_frames`` monitored frames are kept.
- ``near_threshold``: a frame with detector candidates near the operating threshold
  (``near_threshold`` feature >= 1), at most ``per_hour`` of them, evenly spaced.
- ``baseline``: ordinary frames picked at random times (a Poisson process of ``per_hour``
  frames an hour on average), for comparison with the incidents.

``Caps`` counts writes in sliding hours and days of the injected clock. Routine captures
(near-threshold, baseline) may only use half of each cap, so alerts always find room.
``near_duplicate`` compares the 32x24 thumbnails the measurement already has.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from edgewatch.clock import Clock

HOUR, DAY = 3600.0, 86400.0
ROUTINE_SHARE = 0.5
"""Share of each cap near-threshold and baseline frames may use."""


def trigger(kind: str, **fields: object) -> dict[str, object]:
    """A trigger as the sidecar and the index record it: ``kind`` plus its fields."""
    return {"kind": kind, **{k: v for k, v in fields.items() if v not in (None, "")}}


class Caps:
    """At most ``per_hour`` writes in any hour and ``per_day`` in any day (0: no cap)."""

    def __init__(self, per_hour: int, per_day: int, clock: Clock) -> None:
        self.per_hour = per_hour
        self.per_day = per_day
        self.clock = clock
        self._times: deque[float] = deque()

    def _counts(self) -> tuple[int, int]:
        now = self.clock.now()
        while self._times and self._times[0] <= now - DAY:
            self._times.popleft()
        hour = sum(1 for t in reversed(self._times) if t > now - HOUR)
        return hour, len(self._times)

    def allow(self, routine: bool = False) -> bool:
        hour, day = self._counts()
        share = ROUTINE_SHARE if routine else 1.0
        return ((not self.per_hour or hour < self.per_hour * share)
                and (not self.per_day or day < self.per_day * share))

    def record(self) -> None:
        self._times.append(self.clock.now())


class RoutineTriggers:
    """Near-threshold and baseline frames, spaced in the clock's time."""

    def __init__(self, near_per_hour: float, baseline_per_hour: float, clock: Clock,
                 seed: int | None = None) -> None:
        self.clock = clock
        self.near_gap = HOUR / near_per_hour if near_per_hour > 0 else None
        self.baseline_rate = baseline_per_hour / HOUR
        self._rng = random.Random(seed)
        now = clock.now()
        self._next_near = now
        self._next_baseline = self._draw(now)

    def _draw(self, now: float) -> float:
        if self.baseline_rate <= 0:
            return float("inf")
        return now + self._rng.expovariate(self.baseline_rate)

    def __call__(self, features: dict[str, float | None]) -> dict[str, object] | None:
        """The routine trigger this frame meets, if any (a frame meets at most one)."""
        now = self.clock.now()
        near = features.get("near_threshold")
        if self.near_gap is not None and near and near >= 1 and now >= self._next_near:
            self._next_near = now + self.near_gap
            return trigger("near_threshold", candidates=int(near))
        if now >= self._next_baseline:
            self._next_baseline = self._draw(now)
            return trigger("baseline")
        return None


def near_duplicate(a: np.ndarray | None, b: np.ndarray | None, max_diff: float) -> bool:
    """Two thumbnails differ by less than ``max_diff`` grey levels on average."""
    if a is None or b is None or a.shape != b.shape or max_diff <= 0:
        return False
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()
    return bool(diff < max_diff)
