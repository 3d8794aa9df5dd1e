"""Fixed-bin integer histograms whose edges come from a reference sample.

Bins are: an underflow bin (x < e[0]), one bin per consecutive pair of edges
(e[i-1] <= x < e[i]), and an overflow bin (x >= e[-1]). The last edge is placed just
above the reference maximum, so the overflow bin holds only values above the reference.
NaN and infinite values are counted apart as ``missing``.

Two histograms with the same edges merge exactly by adding counts:

>>> import numpy as np
>>> edges = edges_from_values(np.arange(100.0), bins=4)
>>> a = BinnedHistogram(edges); a.update(np.array([1.0, 50.0, 200.0]))
>>> b = BinnedHistogram(edges); b.update(np.array([-5.0, float("nan")]))
>>> (a + b).counts.tolist(), (a + b).missing
([1, 1, 0, 1, 0, 0, 1], 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgewatch.errors import StatsError

FloatArray = npt.NDArray[np.float64]


def edges_from_values(values: npt.ArrayLike, bins: int = 20) -> FloatArray:
    """Edges at the reference's quantiles 0, 1/bins, ..., 1 (observed values), deduplicated.

    A final edge just above the maximum closes the last inner bin, [max, max+), so discrete
    features (counts) get one bin per observed value and the overflow bin holds only values
    above anything the reference saw. Raises StatsError when there is no finite value to
    take quantiles of.
    """
    if bins < 1:
        raise StatsError(f"bins must be >= 1, got {bins}")
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise StatsError("cannot build histogram edges: no finite reference values")
    q = np.quantile(x, np.linspace(0.0, 1.0, bins + 1), method="lower")
    return np.concatenate([np.unique(q), [np.nextafter(q[-1], np.inf)]])


class BinnedHistogram:
    """Integer counts over fixed edges; see the module docstring for the bin layout."""

    __slots__ = ("counts", "edges", "missing")

    def __init__(
        self,
        edges: npt.ArrayLike,
        counts: npt.ArrayLike | None = None,
        missing: int = 0,
    ) -> None:
        e = np.asarray(edges, dtype=np.float64)
        if e.ndim != 1 or e.size < 1:
            raise StatsError("edges must be a non-empty 1-D sequence")
        if not np.all(np.isfinite(e)):
            raise StatsError("edges must be finite")
        if e.size > 1 and not np.all(np.diff(e) > 0):
            raise StatsError("edges not in strictly increasing order")
        self.edges: FloatArray = e
        if counts is None:
            self.counts = np.zeros(e.size + 1, dtype=np.int64)
        else:
            c = np.asarray(counts, dtype=np.int64)
            if c.shape != (e.size + 1,):
                raise StatsError(f"expected {e.size + 1} counts for {e.size} edges, got {c.size}")
            if np.any(c < 0):
                raise StatsError("counts must be non-negative")
            self.counts = c.copy()
        if missing < 0:
            raise StatsError("missing must be non-negative")
        self.missing = int(missing)

    @property
    def total(self) -> int:
        """Number of finite values counted (missing excluded)."""
        return int(self.counts.sum())

    def update(self, values: npt.ArrayLike) -> None:
        """Count one value or an array of values."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.size == 0:
            return
        finite = np.isfinite(x)
        n_missing = int(x.size - np.count_nonzero(finite))
        if n_missing:
            self.missing += n_missing
            x = x[finite]
        idx = np.searchsorted(self.edges, x, side="right")
        self.counts += np.bincount(idx, minlength=self.counts.size)

    def compatible(self, other: BinnedHistogram) -> bool:
        """True when both share the same edges and can therefore be merged or compared."""
        return self.edges is other.edges or (
            self.edges.shape == other.edges.shape and bool(np.array_equal(self.edges, other.edges))
        )

    def merge(self, other: BinnedHistogram) -> None:
        """Add another histogram's counts in place; edges must be identical."""
        if not self.compatible(other):
            raise StatsError("cannot merge histograms with different edges")
        self.counts += other.counts
        self.missing += other.missing

    def __add__(self, other: BinnedHistogram) -> BinnedHistogram:
        out = self.copy()
        out.merge(other)
        return out

    def __iadd__(self, other: BinnedHistogram) -> BinnedHistogram:
        self.merge(other)
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BinnedHistogram):
            return NotImplemented
        return (
            self.compatible(other)
            and bool(np.array_equal(self.counts, other.counts))
            and self.missing == other.missing
        )

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> BinnedHistogram:
        return BinnedHistogram(self.edges, self.counts, self.missing)

    def empty_like(self) -> BinnedHistogram:
        """A histogram with the same edges and no counts."""
        return BinnedHistogram(self.edges)

    def cdf(self) -> FloatArray:
        """Cumulative fraction of finite values at the right end of every bin."""
        total = self.total
        if total == 0:
            return np.zeros(self.counts.size)
        return np.cumsum(self.counts) / total

    def to_dict(self, with_edges: bool = True) -> dict[str, Any]:
        """Compact JSON form: counts always, edges when asked (windows omit them)."""
        out: dict[str, Any] = {"counts": self.counts.tolist(), "missing": self.missing}
        if with_edges:
            out["edges"] = self.edges.tolist()
        return out

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], edges: Sequence[float] | FloatArray | None = None
    ) -> BinnedHistogram:
        """Inverse of to_dict; pass the reference's edges when the dict carries none."""
        e = data.get("edges") if edges is None else edges
        if e is None:
            raise StatsError("histogram has no edges and none were given")
        return cls(e, data["counts"], int(data.get("missing", 0)))

    def __repr__(self) -> str:
        return (f"BinnedHistogram(bins={self.counts.size}, total={self.total}, "
                f"missing={self.missing})")
