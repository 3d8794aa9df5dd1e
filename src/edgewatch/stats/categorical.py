"""Counts of categorical labels (class mix, coarse box position) that merge by addition.

>>> a = CategoricalCounts(); a.update(["person", "person", "car"])
>>> b = CategoricalCounts({"car": 2})
>>> (a + b).as_dict()
{'car': 3, 'person': 2}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from edgewatch.errors import StatsError


class CategoricalCounts:
    """Label -> count, with exact merge; labels are strings."""

    __slots__ = ("_counts", "missing")

    def __init__(self, counts: Mapping[str, int] | None = None, missing: int = 0) -> None:
        self._counts: Counter[str] = Counter()
        for key, value in (counts or {}).items():
            if int(value) < 0:
                raise StatsError(f"negative count for {key!r}")
            if value:
                self._counts[str(key)] = int(value)
        self.missing = int(missing)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def update(self, labels: Iterable[str]) -> None:
        self._counts.update(labels)

    def add(self, label: str, count: int = 1) -> None:
        self._counts[label] += count

    def merge(self, other: CategoricalCounts) -> None:
        self._counts.update(other._counts)
        self.missing += other.missing

    def __add__(self, other: CategoricalCounts) -> CategoricalCounts:
        out = CategoricalCounts(self._counts, self.missing)
        out.merge(other)
        return out

    def __iadd__(self, other: CategoricalCounts) -> CategoricalCounts:
        self.merge(other)
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalCounts):
            return NotImplemented
        return self.as_dict() == other.as_dict() and self.missing == other.missing

    __hash__ = None  # type: ignore[assignment]

    def get(self, label: str) -> int:
        return self._counts.get(label, 0)

    def labels(self) -> list[str]:
        return sorted(self._counts)

    def as_dict(self) -> dict[str, int]:
        """Sorted by label, zero counts left out."""
        return {k: self._counts[k] for k in sorted(self._counts) if self._counts[k]}

    def to_dict(self) -> dict[str, object]:
        return {"counts": self.as_dict(), "missing": self.missing}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CategoricalCounts:
        counts = data.get("counts", {})
        if not isinstance(counts, Mapping):
            raise StatsError("categorical counts must be a mapping")
        missing = data.get("missing", 0)
        return cls({str(k): int(v) for k, v in counts.items()}, int(missing))  # type: ignore[call-overload]

    def __repr__(self) -> str:
        return f"CategoricalCounts({self.as_dict()!r})"
