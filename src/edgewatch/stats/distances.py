"""Distances between a reference histogram and a window histogram: PSI, Jensen-Shannon,
Wasserstein.

Each takes two :class:`BinnedHistogram` with identical edges and ignores ``missing`` values
(the checks are in :mod:`edgewatch.stats.comparison`).

>>> import numpy as np
>>> edges = np.arange(4) + 0.5                       # bins: <0.5, [0.5,1.5), ..., >=3.5
>>> ref = BinnedHistogram(edges, [10, 20, 40, 20, 10])
>>> win = BinnedHistogram(edges, [5, 10, 30, 30, 25])
>>> round(psi(ref, win), 4), round(js_distance(ref, win), 4), round(wasserstein(ref, win), 4)
(0.3107, 0.234, 0.5)
"""

from __future__ import annotations

import math

import numpy as np

from edgewatch.stats.comparison import cdf_gap, positive, totals
from edgewatch.stats.histogram import BinnedHistogram, FloatArray

_LN2 = math.log(2.0)


def psi(ref: BinnedHistogram, win: BinnedHistogram, eps: float = 1e-4) -> float:
    """Population Stability Index.

    PSI = sum_i (p_w,i - p_r,i) * ln(p_w,i / p_r,i), where p are the bin proportions of
    finite values, each floored at ``eps`` (no renormalisation) so that empty bins give a
    finite value. Every term is >= 0, so PSI >= 0, and PSI == 0 for identical proportions.
    Common reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.

    Reference: B. Yurdakul, "Statistical properties of population stability index",
    PhD dissertation, Western Michigan University, 2018; N. Siddiqi, "Credit Risk
    Scorecards", Wiley, 2006.
    """
    floor = positive(eps, "eps")
    n_ref, n_win = totals(ref, win)
    pr = np.maximum(ref.counts / n_ref, floor)
    pw = np.maximum(win.counts / n_win, floor)
    return float((pw - pr) @ np.log(pw / pr))


def js_distance(ref: BinnedHistogram, win: BinnedHistogram) -> float:
    """Jensen-Shannon distance, base 2, in [0, 1].

    JSD = sqrt( (KL(p || m) + KL(q || m)) / 2 ) with m = (p + q) / 2, KL in bits and
    0 * log(0) = 0. Symmetric, and a metric (the square root of the divergence).

    Reference: J. Lin, "Divergence measures based on the Shannon entropy", IEEE Trans.
    Inf. Theory 37(1), 1991; D. M. Endres and J. E. Schindelin, "A new metric for
    probability distributions", IEEE Trans. Inf. Theory 49(7), 2003.
    """
    n_ref, n_win = totals(ref, win)
    pq = np.concatenate((ref.counts / n_ref, win.counts / n_win))
    m = 0.5 * (pq[: pq.size // 2] + pq[pq.size // 2 :])
    mm = np.concatenate((m, m))
    keep = pq > 0.0
    kl = float(pq[keep] @ np.log(pq[keep] / mm[keep]))
    return min(1.0, math.sqrt(max(0.0, kl / (2.0 * _LN2))))


def bin_positions(edges: FloatArray) -> FloatArray:
    """Where each bin's mass sits: underflow at e[0], inner bins at midpoints, overflow at e[-1]."""
    return np.concatenate((edges[:1], 0.5 * (edges[:-1] + edges[1:]), edges[-1:]))


def wasserstein(ref: BinnedHistogram, win: BinnedHistogram) -> float:
    """1-D Wasserstein-1 (earth mover's) distance between the binned distributions.

    Each bin's mass is placed at :func:`bin_positions` (so the result is in the feature's
    units and does not see movement inside one bin); then
    W1 = integral |F_r(x) - F_w(x)| dx = sum_i |F_r,i - F_w,i| * (x_{i+1} - x_i), computed
    as 1/2 sum_j (e_j - e_{j-1}) (|G_{j-1}| + |G_j|) with G = F_r - F_w at the bin ends.

    Reference: S. S. Vallender, "Calculation of the Wasserstein distance between
    probability distributions on the line", Theory Probab. Appl. 18(4), 1974.
    """
    gap = np.abs(cdf_gap(ref, win)[0][:-1])
    return 0.5 * float(np.diff(ref.edges) @ (gap[:-1] + gap[1:]))


def normalised_wasserstein(ref: BinnedHistogram, win: BinnedHistogram, scale: float) -> float:
    """:func:`wasserstein` divided by ``scale`` (the reference standard deviation).

    A scale that is not a positive finite number (constant or unknown reference) is
    replaced by 1, so the distance is then reported in raw units.
    """
    s = float(scale)
    if not (math.isfinite(s) and s > 0.0):
        s = 1.0
    return wasserstein(ref, win) / s
