"""BinnedHistogram, Moments, LogSketch and CategoricalCounts against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewatch.errors import StatsError
from edgewatch.stats import (
    BinnedHistogram,
    CategoricalCounts,
    LogSketch,
    Moments,
    edges_from_values,
)

floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def numpy_counts(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Reference implementation: under, np.histogram inner bins (half-open), over."""
    inner = [np.count_nonzero((x >= a) & (x < b)) for a, b in zip(edges[:-1], edges[1:])]
    return np.array([np.count_nonzero(x < edges[0]), *inner, np.count_nonzero(x >= edges[-1])])


def test_edges_are_reference_quantiles() -> None:
    x = np.random.default_rng(0).normal(size=10_000)
    edges = edges_from_values(x, bins=10)
    assert np.allclose(edges[:-1], np.quantile(x, np.linspace(0, 1, 11), method="lower"))
    assert edges[-1] > x.max() and edges[-1] == np.nextafter(x.max(), np.inf)


def test_reference_fills_inner_bins_evenly_and_not_overflow() -> None:
    x = np.random.default_rng(1).uniform(size=10_000)
    h = BinnedHistogram(edges_from_values(x, bins=10))
    h.update(x)
    assert h.counts[0] == 0 and h.counts[-1] == 0
    assert np.all(np.abs(h.counts[1:-2] - 1000) <= 1)
    assert h.counts[-2] == 1  # the maximum's own bin


def test_discrete_values_get_one_bin_each() -> None:
    x = np.array([0, 0, 1, 1, 1, 2, 3, 3, 7], float)
    edges = edges_from_values(x, bins=20)
    assert edges[:-1].tolist() == [0, 1, 2, 3, 7]
    h = BinnedHistogram(edges)
    h.update(x)
    assert h.counts.tolist() == [0, 2, 3, 1, 2, 1, 0]


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, min_size=1, max_size=200), st.lists(floats, max_size=200),
       st.integers(1, 30))
def test_counts_match_numpy(ref: list[float], x: list[float], bins: int) -> None:
    edges = edges_from_values(ref, bins)
    h = BinnedHistogram(edges)
    h.update(np.array(x))
    assert h.counts.tolist() == numpy_counts(edges, np.array(x)).tolist()
    assert h.total == len(x)


@settings(max_examples=100, deadline=None)
@given(st.lists(floats, min_size=1, max_size=100), st.lists(floats, max_size=100),
       st.lists(floats, max_size=100))
def test_merge_equals_histogram_of_concatenation(ref: list[float], a: list[float],
                                                  b: list[float]) -> None:
    edges = edges_from_values(ref, 8)
    ha, hb, hab = BinnedHistogram(edges), BinnedHistogram(edges), BinnedHistogram(edges)
    ha.update(np.array(a))
    hb.update(np.array(b))
    hab.update(np.array(a + b))
    assert ha + hb == hab


def test_nan_and_inf_are_missing_not_counted() -> None:
    h = BinnedHistogram([0.0, 1.0])
    h.update(np.array([np.nan, np.inf, -np.inf, 0.5]))
    assert h.missing == 3 and h.total == 1


def test_serialisation_round_trip_without_edges() -> None:
    edges = edges_from_values(np.arange(50.0), 5)
    h = BinnedHistogram(edges)
    h.update(np.arange(-3.0, 60.0))
    back = BinnedHistogram.from_dict(h.to_dict(with_edges=False), edges)
    assert back == h


@pytest.mark.parametrize(
    ("edges", "message"),
    [([1.0, 0.0], "increasing"), ([], "non-empty"), ([0.0, np.inf], "finite")],
)
def test_bad_edges_are_rejected(edges: list[float], message: str) -> None:
    with pytest.raises(StatsError, match=message):
        BinnedHistogram(edges)


def test_merge_with_other_edges_is_refused() -> None:
    with pytest.raises(StatsError, match="different edges"):
        BinnedHistogram([0.0, 1.0]).merge(BinnedHistogram([0.0, 2.0]))


@settings(max_examples=100, deadline=None)
@given(st.lists(floats, min_size=0, max_size=100), st.lists(floats, min_size=0, max_size=100))
def test_moments_merge_matches_numpy(a: list[float], b: list[float]) -> None:
    ma, mb = Moments(), Moments()
    ma.update(a)
    mb.update(b)
    m = ma + mb
    x = np.array(a + b)
    assert m.count == x.size
    if x.size:
        assert m.mean == pytest.approx(x.mean(), rel=1e-9, abs=1e-6)
        assert m.min == x.min() and m.max == x.max()
    if x.size > 1:
        assert m.variance == pytest.approx(x.var(ddof=1), rel=1e-7, abs=1e-3)


def test_sketch_quantiles_within_relative_accuracy() -> None:
    rng = np.random.default_rng(2)
    x = rng.lognormal(mean=2.5, sigma=0.6, size=20_000)
    parts = np.array_split(x, 7)
    sketches = []
    for part in parts:
        s = LogSketch(0.01)
        for v in part[:100]:
            s.add(float(v))
        s.update(part[100:])
        sketches.append(s)
    total = sketches[0]
    for s in sketches[1:]:
        total = total + s
    assert total.count == x.size
    xs = np.sort(x)
    for q in (0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
        est = total.quantile(q)
        lo = xs[int(np.floor(q * (x.size - 1)))]
        hi = xs[int(np.ceil(q * (x.size - 1)))]
        assert lo * (1 - 0.0101) <= est <= hi * (1 + 0.0101), q


def test_sketch_round_trip_and_zero_bucket() -> None:
    s = LogSketch()
    s.update([0.0, 0.0, 5.0])
    back = LogSketch.from_dict(s.to_dict())
    assert back.count == 3 and back.zero == 2 and back.quantile(0.0) == 0.0
    assert back.quantile(1.0) == pytest.approx(5.0, rel=0.01)
    assert np.isnan(LogSketch().quantile(0.5))


def test_categorical_merge_and_round_trip() -> None:
    a = CategoricalCounts()
    a.update(["person", "car", "person"])
    b = CategoricalCounts.from_dict(CategoricalCounts({"dog": 1, "car": 2}).to_dict())
    assert (a + b).as_dict() == {"car": 3, "dog": 1, "person": 2}
    with pytest.raises(StatsError):
        CategoricalCounts({"x": -1})
