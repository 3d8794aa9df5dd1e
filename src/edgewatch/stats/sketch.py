"""A mergeable quantile sketch with bounded relative error, for latencies.

Values are counted in logarithmic buckets: bucket ``k`` holds values in
(gamma**(k-1), gamma**k] with gamma = (1 + a) / (1 - a), so any quantile is returned within
a relative error ``a`` of a value of the right rank (the DDSketch mapping: Masson, Rim and
Lee, "DDSketch: a fast and fully-mergeable quantile sketch with relative-error
guarantees", VLDB 2019). Memory is bounded by the dynamic range, not by the count:
latencies from 1 microsecond to 1 hour need under 1,100 buckets at 1 %.

>>> s = LogSketch(); s.update([10.0, 20.0, 30.0, 40.0])
>>> abs(s.quantile(0.5) - 20.0) / 20.0 <= 0.01
True
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt

from edgewatch.errors import StatsError


class LogSketch:
    """Relative-error quantile sketch of positive values; zero and below share one bucket."""

    __slots__ = ("_log_gamma", "accuracy", "buckets", "count", "gamma", "max", "zero")

    def __init__(self, accuracy: float = 0.01) -> None:
        if not 0.0 < accuracy < 1.0:
            raise StatsError(f"accuracy must lie in (0, 1), got {accuracy}")
        self.accuracy = accuracy
        self.gamma = (1.0 + accuracy) / (1.0 - accuracy)
        self._log_gamma = math.log(self.gamma)
        self.buckets: Counter[int] = Counter()
        self.zero = 0
        self.count = 0
        self.max = -math.inf

    def add(self, value: float) -> None:
        """Count one value (the fast path for per-frame latencies)."""
        if not math.isfinite(value):
            return
        if value > 0.0:
            self.buckets[math.ceil(math.log(value) / self._log_gamma)] += 1
        else:
            self.zero += 1
        self.count += 1
        self.max = max(self.max, value)

    def update(self, values: npt.ArrayLike) -> None:
        x = np.asarray(values, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        if x.size == 0:
            return
        positive = x[x > 0.0]
        self.zero += int(x.size - positive.size)
        if positive.size:
            keys = np.ceil(np.log(positive) / self._log_gamma).astype(np.int64)
            uniq, cnt = np.unique(keys, return_counts=True)
            for k, c in zip(uniq.tolist(), cnt.tolist()):
                self.buckets[k] += c
        self.count += int(x.size)
        self.max = max(self.max, float(x.max()))

    def merge(self, other: LogSketch) -> None:
        if other.accuracy != self.accuracy:
            raise StatsError("cannot merge sketches of different accuracy")
        self.buckets.update(other.buckets)
        self.zero += other.zero
        self.count += other.count
        self.max = max(self.max, other.max)

    def __add__(self, other: LogSketch) -> LogSketch:
        out = LogSketch.from_dict(self.to_dict())
        out.merge(other)
        return out

    def quantile(self, q: float) -> float:
        """Value at quantile q (lower rank convention), NaN when empty."""
        if not 0.0 <= q <= 1.0:
            raise StatsError(f"quantile must lie in [0, 1], got {q}")
        if self.count == 0:
            return math.nan
        rank = q * (self.count - 1)
        seen = self.zero
        if rank < seen:
            return 0.0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen > rank:
                return min(2.0 * self.gamma**key / (self.gamma + 1.0), self.max)
        return self.max

    def to_dict(self) -> dict[str, Any]:
        keys = sorted(self.buckets)
        return {
            "accuracy": self.accuracy, "count": self.count, "zero": self.zero,
            "max": self.max if self.count else None,
            "keys": keys, "counts": [self.buckets[k] for k in keys],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogSketch:
        out = cls(float(data.get("accuracy", 0.01)))
        keys, counts = data.get("keys", []), data.get("counts", [])
        if len(keys) != len(counts):
            raise StatsError("sketch keys and counts differ in length")
        out.buckets = Counter({int(k): int(c) for k, c in zip(keys, counts)})
        out.zero = int(data.get("zero", 0))
        out.count = int(data.get("count", 0))
        mx = data.get("max")
        out.max = float(mx) if mx is not None else -math.inf
        return out
