"""Count, mean, variance, min and max that merge exactly (Chan et al., 1979).

>>> a = Moments(); a.update([1.0, 2.0]); b = Moments(); b.update([3.0, 4.0])
>>> m = a + b; (m.count, m.mean, round(m.variance, 6), m.min, m.max)
(4, 2.5, 1.666667, 1.0, 4.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt


class Moments:
    """Streaming first and second moments of finite values (sample variance, ddof=1)."""

    __slots__ = ("count", "m2", "max", "mean", "min")

    def __init__(
        self,
        count: int = 0,
        mean: float = 0.0,
        m2: float = 0.0,
        min: float = math.inf,
        max: float = -math.inf,
    ) -> None:
        self.count = int(count)
        self.mean = float(mean)
        self.m2 = float(m2)
        self.min = float(min)
        self.max = float(max)

    def update(self, values: npt.ArrayLike) -> None:
        x = np.asarray(values, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        if x.size == 0:
            return
        batch = Moments(
            int(x.size), float(x.mean()), float(((x - x.mean()) ** 2).sum()),
            float(x.min()), float(x.max()),
        )
        self.merge(batch)

    def merge(self, other: Moments) -> None:
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean, other.m2
            self.min, self.max = other.min, other.max
            return
        n = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / n
        self.m2 += other.m2 + delta * delta * self.count * other.count / n
        self.count = n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def __add__(self, other: Moments) -> Moments:
        out = Moments(self.count, self.mean, self.m2, self.min, self.max)
        out.merge(other)
        return out

    @property
    def variance(self) -> float:
        return self.m2 / (self.count - 1) if self.count > 1 else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    def to_dict(self) -> dict[str, Any]:
        if self.count == 0:
            return {"count": 0}
        return {
            "count": self.count, "mean": self.mean, "std": self.std,
            "m2": self.m2, "min": self.min, "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Moments:
        if int(data.get("count", 0)) == 0:
            return cls()
        return cls(int(data["count"]), float(data["mean"]), float(data["m2"]),
                   float(data["min"]), float(data["max"]))
