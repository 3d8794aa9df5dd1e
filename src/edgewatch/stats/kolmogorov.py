"""The two-sample Kolmogorov-Smirnov test on binned data, with the exact p-value.

The statistic compares the empirical CDFs of a reference and a window histogram (identical
edges, ``missing`` ignored; see :mod:`edgewatch.stats.comparison`); the p-value follows the
one-sample Kolmogorov distribution as scipy computes it, in numpy and math only.

>>> import numpy as np
>>> edges = np.arange(4) + 0.5                       # bins: <0.5, [0.5,1.5), ..., >=3.5
>>> ref = BinnedHistogram(edges, [10, 20, 40, 20, 10])
>>> win = BinnedHistogram(edges, [5, 10, 30, 30, 25])
>>> r = ks(ref, win); round(r.statistic, 3), round(r.pvalue, 4)
(0.25, 0.0031)
>>> round(kolmogorov_sf(1.36), 4)
0.0495
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from edgewatch.errors import StatsError
from edgewatch.stats.comparison import cdf_gap, positive
from edgewatch.stats.histogram import BinnedHistogram, FloatArray

_LN2 = math.log(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)
_PI2 = math.pi**2
_SCALE_EXP = 128
_SCALE = 2.0**_SCALE_EXP


@dataclass(frozen=True, slots=True)
class KsResult:
    """Two-sample Kolmogorov-Smirnov result; n_ref/n_win are the (effective) sizes used."""

    statistic: float
    pvalue: float
    n_ref: float
    n_win: float


def ks(
    ref: BinnedHistogram,
    win: BinnedHistogram,
    n_eff_ref: float | None = None,
    n_eff_win: float | None = None,
) -> KsResult:
    """Two-sample, two-sided Kolmogorov-Smirnov test on binned data.

    D = max_i |F_r(e_i) - F_w(e_i)|, the two empirical CDFs compared at the right end of
    every bin (exactly the sample KS statistic when every distinct value has its own bin;
    otherwise a lower bound of it). With n, m the sample sizes -- the histogram totals, or
    the effective sizes given, e.g. from
    :func:`~edgewatch.stats.autocorrelation.effective_sample_size` -- and
    en = n*m/(n+m), the p-value is ``kolmogorov_n_sf(round(en), D)``: the one-sample
    Kolmogorov distribution of size round(en). This is exactly what
    ``scipy.stats.ks_2samp(..., method='asymp')`` does (``kstwo.sf(d, np.round(en))``),
    which is slightly more accurate for small en than the limiting form
    :func:`kolmogorov_sf`. round(en) is floored at 1.

    Reference: N. Smirnov, "Table for estimating the goodness of fit of empirical
    distributions", Ann. Math. Stat. 19, 1948; J. L. Hodges, "The significance
    probability of the Smirnov two-sample test", Ark. Mat. 3, 1958.
    """
    gap, n_ref, n_win = cdf_gap(ref, win)
    d = float(np.abs(gap).max())
    n1 = float(n_ref) if n_eff_ref is None else positive(n_eff_ref, "n_eff_ref")
    n2 = float(n_win) if n_eff_win is None else positive(n_eff_win, "n_eff_win")
    big, small = max(n1, n2), min(n1, n2)
    en = big * small / (big + small)
    return KsResult(d, kolmogorov_n_sf(max(1, round(en)), d), n1, n2)


def kolmogorov_sf(x: float) -> float:
    """Survival function of the limiting Kolmogorov distribution, P(sqrt(n) D_n >= x).

    K(x) = 2 * sum_{k>=1} (-1)^(k-1) exp(-2 k^2 x^2) for x > 0.82; for smaller x that
    alternating series converges slowly, so the Jacobi-theta form of the CDF is used,
    1 - K(x) = sqrt(2 pi)/x * sum_{k>=1} exp(-(2k-1)^2 pi^2 / (8 x^2)). Same split as
    cephes / ``scipy.special.kolmogorov``.

    Reference: A. Kolmogorov, "Sulla determinazione empirica di una legge di
    distribuzione", G. Ist. Ital. Attuari 4, 1933; G. Marsaglia, W. W. Tsang and J. Wang,
    "Evaluating Kolmogorov's distribution", J. Stat. Softw. 8(18), 2003.
    """
    if x <= math.pi / math.sqrt(746.0 * 8.0):
        return 1.0
    if x <= 0.82:
        s = sum(math.exp(-((2 * k - 1) ** 2) * _PI2 / (8.0 * x * x)) for k in (1, 2, 3, 4))
        return min(1.0, max(0.0, 1.0 - _SQRT2PI / x * s))
    s = sum((-1.0) ** (k - 1) * math.exp(-2.0 * k * k * x * x) for k in (1, 2, 3, 4, 5))
    return min(1.0, max(0.0, 2.0 * s))


def kolmogorov_n_sf(n: int, x: float) -> float:
    """P(D_n >= x) for the two-sided one-sample KS statistic with n observations.

    A numpy port of ``scipy.stats.kstwo.sf`` (scipy/stats/_ksstats.py), which follows the
    method selection of Simard and L'Ecuyer: closed forms of Ruben and Gambino near
    x = 1/n and x = 1, 2 * Smirnov's one-sided tail where the two tails cannot overlap or
    one dominates, the Durbin matrix (Marsaglia-Tsang-Wang) for small n*x^2, Pelz-Good's
    expansion for large n. One deliberate change: for n <= 140 and 0.754693 < n*x^2 <= 4
    scipy uses Pomeranz's recursion, here the Durbin matrix is used (both are exact; the
    matrix needs no Python loop over n).

    Reference: R. Simard and P. L'Ecuyer, "Computing the two-sided Kolmogorov-Smirnov
    distribution", J. Stat. Softw. 39(11), 2011.
    """
    if n < 1:
        raise StatsError(f"n must be >= 1, got {n}")
    t = n * x
    if x >= 1.0:
        return 0.0
    if t <= 0.5:
        return 1.0
    if t <= 1.0:
        return 1.0 - math.exp(_log_factorial_over_power(n) + n * math.log(2.0 * t - 1.0))
    if t >= n - 1:
        return min(1.0, 2.0 * (1.0 - x) ** n)
    nx2 = t * x
    if x >= 0.5 or (n <= 140 and nx2 > 4.0) or (n > 140 and 2.2 <= nx2 < 370.0):
        return min(1.0, 2.0 * _smirnov_sf(n, x))
    if n > 140 and nx2 >= 370.0:
        return 0.0
    if n <= 140 or (n <= 100_000 and n * x**1.5 <= 1.4):
        return min(1.0, max(0.0, 1.0 - _durbin_cdf(n, x)))
    return min(1.0, max(0.0, 1.0 - _pelz_good_cdf(n, x)))


def _log_factorial_over_power(n: int) -> float:
    """log(n! / n^n)."""
    return math.lgamma(n + 1.0) - n * math.log(n)


def _smirnov_sf(n: int, x: float) -> float:
    """One-sided P(D_n^+ >= x), the Birnbaum-Tingey sum (as ``scipy.special.smirnov``).

    x * sum_{v=0}^{floor(n(1-x))} C(n,v) (1 - x - v/n)^(n-v) (x + v/n)^(v-1), all terms
    positive, summed from logs. Above n = 10^6 cephes' approximation exp(-(6nx+1)^2/(18n))
    is used, as scipy does.
    """
    nx = n * x
    if n > 1_000_000:
        return math.exp(-((6.0 * nx + 1.0) ** 2) / (18.0 * n))
    v = np.arange(n - math.floor(nx), dtype=np.float64)
    v = v[n - v - nx > 0.0]
    log_binom = np.empty_like(v)
    log_binom[0] = 0.0
    np.cumsum(np.log((n - v[:-1]) / (v[:-1] + 1.0)), out=log_binom[1:])
    logs = log_binom + (n - v) * np.log((n - v - nx) / n) + (v - 1.0) * np.log((v + nx) / n)
    return x * float(np.exp(logs).sum())


def _durbin_cdf(n: int, d: float) -> float:
    """P(D_n < d) by Durbin's matrix, as Marsaglia, Tsang and Wang (2003) compute it.

    With k = ceil(n d), h = k - n d, the (2k-1)-square matrix H has entries
    1/(i-j+1)! (zero where i-j+1 < 0), first column (1 - h^i)/i!, last row its reverse and
    corner (1 - 2h^m + max(0, 2h-1)^m)/m!; then P = n!/n^n (H^n)[k, k].
    """
    k = math.ceil(n * d)
    h = k - n * d
    m = 2 * k - 1
    base, inv_fact, powers = _durbin_base(m)
    v = (1.0 - h**powers) * inv_fact
    v[-1] = (1.0 + max(2.0 * h - 1.0, 0.0) ** m - 2.0 * h**m) * inv_fact[-1]
    mat = base.copy()
    mat[:, 0] = v
    mat[-1, :] = v[::-1]
    entry, expnt = _matrix_power_entry(mat, n, k - 1)
    if entry <= 0.0:
        return 0.0
    log_p = math.log(entry) + expnt * _LN2 + _log_factorial_over_power(n)
    return math.exp(min(log_p, 0.0))


@functools.lru_cache(maxsize=128)
def _durbin_base(m: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Read-only (Toeplitz part of H, [1/1!, ..., 1/m!], [1, ..., m]) for size m."""
    powers = np.arange(1, m + 1, dtype=np.float64)
    inv_fact = np.cumprod(1.0 / powers, dtype=np.float64)
    w = np.concatenate(([1.0], inv_fact))  # 1/0!, ..., 1/m!
    idx = np.arange(m)
    lag = idx[:, None] - idx[None, :] + 1
    base: FloatArray = np.where(lag >= 0, w[np.clip(lag, 0, m)], 0.0)
    for arr in (base, inv_fact, powers):
        arr.flags.writeable = False
    return base, inv_fact, powers


def _matrix_power_entry(mat: FloatArray, power: int, k: int) -> tuple[float, int]:
    """(a, e) with (mat**power)[k, k] == a * 2**e, rescaling by 2**-128 against overflow.

    Durbin's H has row sums <= e, so no entry of H^power exceeds e^power: below power 600
    nothing can overflow and the rescaling check is skipped.
    """
    result: FloatArray | None = None
    expnt = mat_expnt = 0
    rescale = power > 600
    while True:
        if power & 1:
            result = mat if result is None else result @ mat
            expnt += mat_expnt
        power >>= 1
        if not power:
            break
        mat = mat @ mat
        mat_expnt *= 2
        if rescale and mat[k, k] > _SCALE:
            mat = mat * (1.0 / _SCALE)
            mat_expnt += _SCALE_EXP
    if result is None:
        raise StatsError("matrix power must be >= 1")
    return float(result[k, k]), expnt


def _pelz_good_cdf(n: int, x: float) -> float:
    """P(D_n < x) by the Pelz-Good (1976) expansion K0 + K1/sqrt(n) + K2/n + K3/n^1.5.

    K0..K3 are sums over odd j = 2i-1 of polynomials in j^2 times q^(j^2), with
    q = exp(-pi^2 / (8 z^2)), z = sqrt(n) x, plus two sums over i^2 exp(-pi^2 i^2 / (2 z^2));
    the sums are taken as moments S_p = sum q^(j^2) j^(2p), T_p = sum exp(..) i^(2p).
    """
    z = math.sqrt(n) * x
    z2 = z * z
    qlog = -_PI2 / (8.0 * z2)
    if qlog < -708.0:
        return 0.0
    odd_pows, ksq, ksq_pows = _pelz_good_base(math.ceil(16.0 * z / math.pi))
    s0, s1, s2, s3 = (np.exp(qlog * odd_pows[:, 1]) @ odd_pows).tolist()
    t1, t2 = (np.exp(-_PI2 / (2.0 * z2) * ksq) @ ksq_pows).tolist()
    z4, z6 = z2 * z2, z2 * z2 * z2
    pi4, pi6 = _PI2 * _PI2, _PI2 * _PI2 * _PI2
    k0 = s0 / z
    k1 = (-z2 * s0 + _PI2 / 4.0 * s1) / (6.0 * z4)
    k2 = (
        (6.0 * z6 + 2.0 * z4) * s0
        + (2.0 * z4 - 5.0 * z2) * _PI2 / 4.0 * s1
        + pi4 * (1.0 - 2.0 * z2) / 16.0 * s2
    ) / (72.0 * z6 * z) - _PI2 * t1 / (36.0 * z2 * z)
    k3 = (
        (-30.0 * z6 - 90.0 * z6 * z2) * s0
        + _PI2 * (135.0 * z4 - 96.0 * z6) / 4.0 * s1
        + pi4 * (212.0 * z4 - 60.0 * z2) / 16.0 * s2
        + pi6 * (5.0 - 30.0 * z2) / 64.0 * s3
    ) / (6480.0 * z6 * z4) + _PI2 * (3.0 * z2 * t1 - _PI2 * t2) / (216.0 * z6)
    root_n = math.sqrt(n)
    return float(_SQRT2PI * (k0 + k1 / root_n + k2 / n + k3 / (n * root_n)))


@functools.lru_cache(maxsize=64)
def _pelz_good_base(terms: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Read-only ((2i-1)^(2p) for p = 0..3, i^2, i^(2p) for p = 1, 2), i = 1..terms."""
    i = np.arange(1, terms + 1, dtype=np.float64)
    odd_pows = ((2.0 * i - 1.0) ** 2)[:, None] ** np.arange(4.0)
    ksq = i * i
    ksq_pows = np.stack((ksq, ksq * ksq), axis=1)
    for arr in (odd_pows, ksq, ksq_pows):
        arr.flags.writeable = False
    return odd_pows, ksq, ksq_pows
