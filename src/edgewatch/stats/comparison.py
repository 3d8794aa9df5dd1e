"""What every two-sample statistic checks first: comparable histograms and valid parameters.

The drift statistics (:mod:`~edgewatch.stats.distances`, :mod:`~edgewatch.stats.kolmogorov`,
:mod:`~edgewatch.stats.chi2`) take two :class:`BinnedHistogram` with identical edges (or two
:class:`~edgewatch.stats.categorical.CategoricalCounts`); they raise :class:`StatsError` when
the edges differ or either side holds no finite value. ``missing`` (NaN) counts are ignored
there: the share of missing values is a separate signal. Only numpy and math are used at run
time; the tests check every statistic against scipy.

>>> import numpy as np
>>> edges = np.arange(4) + 0.5                       # bins: <0.5, [0.5,1.5), ..., >=3.5
>>> ref = BinnedHistogram(edges, [10, 20, 40, 20, 10])
>>> win = BinnedHistogram(edges, [5, 10, 30, 30, 25])
>>> totals(ref, win)
(100, 100)
>>> gap, _, _ = cdf_gap(ref, win); np.round(gap, 2).tolist()
[0.05, 0.15, 0.25, 0.15, 0.0]
>>> positive(0.5, "eps")
0.5
"""

from __future__ import annotations

import math

from edgewatch.errors import StatsError
from edgewatch.stats.histogram import BinnedHistogram, FloatArray


def totals(ref: BinnedHistogram, win: BinnedHistogram) -> tuple[int, int]:
    """Numbers of finite values in both histograms, after checking they can be compared."""
    if ref.edges is not win.edges and not ref.compatible(win):
        raise StatsError("cannot compare histograms with different edges")
    n_ref, n_win = sum(ref.counts.tolist()), sum(win.counts.tolist())
    if n_ref == 0 or n_win == 0:
        raise StatsError("cannot compare an empty histogram")
    return n_ref, n_win


def cdf_gap(ref: BinnedHistogram, win: BinnedHistogram) -> tuple[FloatArray, int, int]:
    """F_ref - F_win at the right end of every bin (the last entry is 0), and both totals."""
    n_ref, n_win = totals(ref, win)
    gap: FloatArray = ref.counts.cumsum() / n_ref - win.counts.cumsum() / n_win
    return gap, n_ref, n_win


def positive(value: float, name: str) -> float:
    """``value`` as a float, or :class:`StatsError` naming ``name`` unless positive and finite."""
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise StatsError(f"{name} must be a positive finite number, got {value!r}")
    return v
