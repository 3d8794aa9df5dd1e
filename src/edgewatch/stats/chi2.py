"""Pearson's chi-square test of a window's label mix against the reference's.

Takes two :class:`CategoricalCounts` (``missing`` ignored); the p-value comes from the
regularised incomplete gamma function, in math only.

>>> ref = CategoricalCounts({"car": 30, "person": 70})
>>> r = chi_square(ref, CategoricalCounts({"car": 55, "person": 45}))
>>> round(r.statistic, 3), r.pvalue < 1e-6, r.dof
(29.183, True, 1)
>>> round(chi2_sf(3.841458820694124, 1), 6)
0.05
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgewatch.errors import StatsError
from edgewatch.stats.categorical import CategoricalCounts
from edgewatch.stats.comparison import positive

_GAMMA_EPS = 1e-15
_GAMMA_TINY = 1e-300
_GAMMA_MAXITER = 100_000


@dataclass(frozen=True, slots=True)
class ChiSquareResult:
    """Pearson chi-square goodness-of-fit result."""

    statistic: float
    pvalue: float
    dof: int


def chi_square(
    ref: CategoricalCounts,
    win: CategoricalCounts,
    n_eff_win: float | None = None,
    pseudo_count: float = 0.5,
) -> ChiSquareResult:
    """Pearson chi-square goodness of fit of the window's labels to the reference mix.

    Over the union of K labels, expected_i = n_win * (c_r,i + a) / (n_ref + K a) with the
    pseudo-count a (0.5, Jeffreys) added to every reference count, so a label the
    reference never saw gets a small but non-zero expectation instead of a division by
    zero. X^2 = sum_i (o_i - e_i)^2 / e_i, scaled by n_eff_win / n_win when an effective
    window size is given (the statistic is proportional to the sample size). dof = K - 1,
    p = P(chi2_dof >= X^2) from :func:`chi2_sf`; with a single label, X^2 = 0 and p = 1.

    Reference: K. Pearson, "On the criterion that a given system of deviations...",
    Phil. Mag. 50, 1900; A. Agresti, "Categorical Data Analysis", 3rd ed., Wiley, 2013.
    """
    a = positive(pseudo_count, "pseudo_count")
    r, w = ref.as_dict(), win.as_dict()
    if not r or not w:
        raise StatsError("cannot compare empty categorical counts")
    labels = sorted(r.keys() | w.keys())
    ref_c = np.array([r.get(k, 0) for k in labels], dtype=np.float64) + a
    obs = np.array([w.get(k, 0) for k in labels], dtype=np.float64)
    n_win = float(obs.sum())
    expected = n_win * (ref_c / ref_c.sum())
    stat = float(np.sum((obs - expected) ** 2 / expected))
    if n_eff_win is not None:
        stat *= positive(n_eff_win, "n_eff_win") / n_win
    dof = len(labels) - 1
    return ChiSquareResult(stat, chi2_sf(stat, dof) if dof > 0 else 1.0, dof)


def chi2_sf(x: float, dof: float) -> float:
    """P(chi2_dof >= x) = Q(dof/2, x/2), the regularised upper incomplete gamma function.

    Q(a, x) = 1 - P(a, x) from the series of P for x < a + 1, else from Legendre's
    continued fraction (modified Lentz), both to relative precision 1e-15.

    Reference: W. H. Press et al., "Numerical Recipes", 3rd ed., CUP, 2007, sect. 6.2.
    """
    df = positive(dof, "dof")
    if not x > 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    a, y = 0.5 * df, 0.5 * x
    log_prefactor = -y + a * math.log(y) - math.lgamma(a)
    if y < a + 1.0:
        return max(0.0, 1.0 - math.exp(log_prefactor) * _gamma_series(a, y))
    return math.exp(log_prefactor) * _gamma_continued_fraction(a, y)


def _gamma_series(a: float, x: float) -> float:
    """sum_{n>=0} x^n / (a (a+1) ... (a+n)), so that P(a, x) = e^-x x^a / Gamma(a) * sum."""
    term = total = 1.0 / a
    ap = a
    for _ in range(_GAMMA_MAXITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _GAMMA_EPS:
            return total
    raise StatsError(f"incomplete gamma series did not converge (a={a}, x={x})")


def _gamma_continued_fraction(a: float, x: float) -> float:
    """Continued fraction with Q(a, x) = e^-x x^a / Gamma(a) * cf (modified Lentz)."""
    b = x + 1.0 - a
    c = 1.0 / _GAMMA_TINY
    d = 1.0 / b
    h = d
    for i in range(1, _GAMMA_MAXITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _GAMMA_TINY if abs(d) < _GAMMA_TINY else d
        c = b + an / c
        c = _GAMMA_TINY if abs(c) < _GAMMA_TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _GAMMA_EPS:
            return h
    raise StatsError(f"incomplete gamma continued fraction did not converge (a={a}, x={x})")
