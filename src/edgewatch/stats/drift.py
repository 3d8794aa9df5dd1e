"""Two-sample drift statistics between a reference histogram and a window histogram.

Every function is pure and takes two :class:`BinnedHistogram` with identical edges (or two
:class:`CategoricalCounts`); it raises :class:`StatsError` when the edges differ or either
side holds no finite value. ``missing`` (NaN) counts are ignored here: the share of missing
values is a separate signal. Only numpy and math are used at run time; the tests check
every statistic against scipy.

>>> import numpy as np
>>> edges = np.arange(4) + 0.5                       # bins: <0.5, [0.5,1.5), ..., >=3.5
>>> ref = BinnedHistogram(edges, [10, 20, 40, 20, 10])
>>> win = BinnedHistogram(edges, [5, 10, 30, 30, 25])
>>> round(psi(ref, win), 4), round(js_distance(ref, win), 4), round(wasserstein(ref, win), 4)
(0.3107, 0.234, 0.5)
>>> r = ks(ref, win); round(r.statistic, 3), round(r.pvalue, 4)
(0.25, 0.0031)
>>> benjamini_hochberg([0.001, 0.04, 0.3], alpha=0.05)
[True, False, False]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edgewatch.errors import StatsError
from edgewatch.stats.categorical import CategoricalCounts
from edgewatch.stats.histogram import BinnedHistogram

FloatArray = npt.NDArray[np.float64]

_LN2 = math.log(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)
_PI2 = math.pi**2
_SCALE_EXP = 128
_SCALE = 2.0**_SCALE_EXP
_GAMMA_EPS = 1e-15
_GAMMA_TINY = 1e-300
_GAMMA_MAXITER = 100_000


@dataclass(frozen=True, slots=True)
class KsResult:
    """Two-sample Kolmogorov-Smirnov result; n_ref/n_win are the (effective) sizes used."""

    statistic: float
    pvalue: float
    n_ref: float
    n_win: float


@dataclass(frozen=True, slots=True)
class ChiSquareResult:
    """Pearson chi-square goodness-of-fit result."""

    statistic: float
    pvalue: float
    dof: int


# --------------------------------------------------------------------------- helpers


def _totals(ref: BinnedHistogram, win: BinnedHistogram) -> tuple[int, int]:
    """Numbers of finite values in both histograms, after checking they can be compared."""
    if ref.edges is not win.edges and not ref.compatible(win):
        raise StatsError("cannot compare histograms with different edges")
    n_ref, n_win = sum(ref.counts.tolist()), sum(win.counts.tolist())
    if n_ref == 0 or n_win == 0:
        raise StatsError("cannot compare an empty histogram")
    return n_ref, n_win


def _cdf_gap(ref: BinnedHistogram, win: BinnedHistogram) -> tuple[FloatArray, int, int]:
    """F_ref - F_win at the right end of every bin (the last entry is 0), and both totals."""
    n_ref, n_win = _totals(ref, win)
    gap: FloatArray = ref.counts.cumsum() / n_ref - win.counts.cumsum() / n_win
    return gap, n_ref, n_win


def _positive(value: float, name: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise StatsError(f"{name} must be a positive finite number, got {value!r}")
    return v


# --------------------------------------------------------------------------- histograms


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
    floor = _positive(eps, "eps")
    n_ref, n_win = _totals(ref, win)
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
    n_ref, n_win = _totals(ref, win)
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
    gap = np.abs(_cdf_gap(ref, win)[0][:-1])
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


# --------------------------------------------------------------------------- Kolmogorov-Smirnov


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
    the effective sizes given, e.g. from :func:`effective_sample_size` -- and
    en = n*m/(n+m), the p-value is ``kolmogorov_n_sf(round(en), D)``: the one-sample
    Kolmogorov distribution of size round(en). This is exactly what
    ``scipy.stats.ks_2samp(..., method='asymp')`` does (``kstwo.sf(d, np.round(en))``),
    which is slightly more accurate for small en than the limiting form
    :func:`kolmogorov_sf`. round(en) is floored at 1.

    Reference: N. Smirnov, "Table for estimating the goodness of fit of empirical
    distributions", Ann. Math. Stat. 19, 1948; J. L. Hodges, "The significance
    probability of the Smirnov two-sample test", Ark. Mat. 3, 1958.
    """
    gap, n_ref, n_win = _cdf_gap(ref, win)
    d = float(np.abs(gap).max())
    n1 = float(n_ref) if n_eff_ref is None else _positive(n_eff_ref, "n_eff_ref")
    n2 = float(n_win) if n_eff_win is None else _positive(n_eff_win, "n_eff_win")
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


# --------------------------------------------------------------------------- categorical


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
    a = _positive(pseudo_count, "pseudo_count")
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
        stat *= _positive(n_eff_win, "n_eff_win") / n_win
    dof = len(labels) - 1
    return ChiSquareResult(stat, chi2_sf(stat, dof) if dof > 0 else 1.0, dof)


def chi2_sf(x: float, dof: float) -> float:
    """P(chi2_dof >= x) = Q(dof/2, x/2), the regularised upper incomplete gamma function.

    Q(a, x) = 1 - P(a, x) from the series of P for x < a + 1, else from Legendre's
    continued fraction (modified Lentz), both to relative precision 1e-15.

    Reference: W. H. Press et al., "Numerical Recipes", 3rd ed., CUP, 2007, sect. 6.2.
    """
    df = _positive(dof, "dof")
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


# --------------------------------------------------------------------------- multiple tests


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


def effective_sample_size(n: float, lag1_autocorr: float) -> float:
    """Effective number of independent observations in an AR(1)-like series.

    n_eff = n * (1 - r) / (1 + r), with r the lag-1 autocorrelation clipped to [0, 0.99]
    (negative or undefined r gives no correction) and the result clipped to [1, n] (or n
    itself when n < 1). This is the variance-inflation factor of the mean of an AR(1)
    process, used to widen tests on serially correlated windows.

    Reference: D. S. Wilks, "Statistical Methods in the Atmospheric Sciences", 3rd ed.,
    Academic Press, 2011, sect. 5.2.4 (effective sample size under serial correlation).
    """
    size = float(n)
    if not (math.isfinite(size) and size >= 0.0):
        raise StatsError(f"n must be a non-negative finite number, got {n!r}")
    r = float(lag1_autocorr)
    r = min(0.99, max(0.0, r)) if math.isfinite(r) else 0.0
    return min(size, max(1.0, size * (1.0 - r) / (1.0 + r)))


def thinned_autocorr(lag1_autocorr: float, stride: float) -> float:
    """Lag-1 autocorrelation of an AR(1) series observed every ``stride`` steps: r**stride.

    A window that measures one frame in k has samples k frames apart, whose correlation
    is r**k, not r; using r would over-deflate its effective size. A stride below 1 (frames
    closer together than the reference's) gives a larger correlation. Non-positive or
    undefined r, or a stride that is not a positive number, gives r unchanged (clipped as
    in ``effective_sample_size``).
    """
    r = float(lag1_autocorr)
    if not math.isfinite(r) or r <= 0.0:
        return r if math.isfinite(r) else 0.0
    r = min(0.99, r)
    return min(0.99, r ** stride) if math.isfinite(stride) and stride > 0.0 else r
