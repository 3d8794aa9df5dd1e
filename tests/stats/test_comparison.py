"""The checks every two-sample statistic shares (edgewatch.stats.comparison): comparable
histograms, totals and the CDF gap, against numpy and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from edgewatch.errors import StatsError
from edgewatch.stats import BinnedHistogram, edges_from_values
from edgewatch.stats.comparison import cdf_gap, positive, totals


def binned(edges: np.ndarray, x: np.ndarray) -> BinnedHistogram:
    h = BinnedHistogram(edges)
    h.update(x)
    return h


def test_cdf_gap_is_the_ks_statistic_of_the_binned_samples() -> None:
    rng = np.random.default_rng(3)
    ref, win = rng.normal(size=4000), rng.normal(0.3, 1.2, size=1500)
    edges = edges_from_values(ref, bins=16)
    gap, n_ref, n_win = cdf_gap(binned(edges, ref), binned(edges, win))
    assert (n_ref, n_win) == (4000, 1500)
    assert gap[-1] == pytest.approx(0.0, abs=1e-12)
    # The same samples reduced to their bin index: scipy's two-sample KS statistic is the
    # largest gap between the two empirical CDFs, which only changes at bin boundaries.
    ref_bins = np.searchsorted(edges, ref, side="right")
    win_bins = np.searchsorted(edges, win, side="right")
    assert np.max(np.abs(gap)) == pytest.approx(sps.ks_2samp(ref_bins, win_bins).statistic)
    expected = (np.cumsum(np.bincount(ref_bins, minlength=len(edges) + 1)) / ref.size
                - np.cumsum(np.bincount(win_bins, minlength=len(edges) + 1)) / win.size)
    assert np.allclose(gap, expected)


def test_missing_values_are_not_in_the_totals() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    ref = binned(edges, np.array([0.5, 1.5, math.nan, math.nan]))
    win = binned(edges, np.array([0.5, -1.0, 3.0]))
    assert totals(ref, win) == (2, 3)


def test_histograms_with_other_edges_or_no_values_are_refused() -> None:
    a = binned(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5]))
    b = binned(np.array([0.0, 1.0, 3.0]), np.array([0.5, 1.5]))
    with pytest.raises(StatsError, match="different edges"):
        totals(a, b)
    empty = binned(np.array([0.0, 1.0, 2.0]), np.array([math.nan]))
    with pytest.raises(StatsError, match="empty"):
        cdf_gap(a, empty)


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_positive_refuses_what_is_not_a_positive_finite_number(value: float) -> None:
    with pytest.raises(StatsError, match="eps must be a positive finite number"):
        positive(value, "eps")


def test_positive_returns_a_float() -> None:
    assert positive(3, "n") == 3.0 and isinstance(positive(3, "n"), float)
