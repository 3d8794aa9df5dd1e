"""Benjamini-Hochberg control of the false discovery rate across many tests.

>>> bh_adjust([0.001, 0.04, 0.3])
[0.003, 0.06, 0.3]
>>> benjamini_hochberg([0.001, 0.04, 0.3], alpha=0.05)
[True, False, False]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgewatch.errors import StatsError


def bh_adjust(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    q_(i) = min_{j >= i} min(1, p_(j) * m / j) over the sorted p-values; rejecting
    q <= alpha controls the false discovery rate at alpha for independent (or positively
    dependent) tests. Same as ``scipy.stats.false_discovery_control(p, method='bh')``.

    Reference: Y. Benjamini and Y. Hochberg, "Controlling the false discovery rate",
    J. R. Stat. Soc. B 57(1), 1995.
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise StatsError("p-values must lie in [0, 1]")
    m = p.size
    if m <= 1:
        return [float(v) for v in p]
    order = np.argsort(p)
    adjusted = p[order] * (m / np.arange(1, m + 1, dtype=np.float64))
    adjusted = np.minimum.accumulate(adjusted[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return [float(v) for v in out]


def benjamini_hochberg(pvalues: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Which hypotheses the Benjamini-Hochberg step-up procedure rejects at FDR ``alpha``.

    Rejects H_(1..k) for the largest k with p_(k) <= k * alpha / m, i.e. q <= alpha with
    q from :func:`bh_adjust`. Reference: Benjamini and Hochberg (1995).
    """
    if not 0.0 <= alpha <= 1.0:
        raise StatsError(f"alpha must lie in [0, 1], got {alpha}")
    return [q <= alpha for q in bh_adjust(pvalues)]
