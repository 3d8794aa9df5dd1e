"""Drift statistics (edgewatch.stats: distances, kolmogorov, chi2, fdr, autocorrelation)
against scipy, plus property tests."""

from __future__ import annotations

import doctest
import importlib
import math
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from edgewatch.errors import StatsError
from edgewatch.stats import BinnedHistogram, CategoricalCounts
from edgewatch.stats.autocorrelation import effective_sample_size, thinned_autocorr
from edgewatch.stats.chi2 import chi2_sf, chi_square
from edgewatch.stats.distances import (
    bin_positions,
    js_distance,
    normalised_wasserstein,
    psi,
    wasserstein,
)
from edgewatch.stats.fdr import benjamini_hochberg, bh_adjust
from edgewatch.stats.kolmogorov import kolmogorov_n_sf, kolmogorov_sf, ks

SIZES = [(5, 7), (20, 20), (40, 100), (90, 200), (300, 500), (1000, 1000), (3000, 20_000)]
SHIFTS = [0.0, 0.1, 0.3, 1.0]


def close(actual: float, expected: float, rtol: float = 1e-6, atol: float = 1e-300) -> bool:
    """Relative comparison for p-values, absolute below ``atol``."""
    return abs(actual - expected) <= max(rtol * abs(expected), atol)


def own_bins(x: np.ndarray, y: np.ndarray) -> tuple[BinnedHistogram, BinnedHistogram]:
    """Histograms in which every distinct pooled value falls in its own bin."""
    u = np.unique(np.concatenate([x, y]))
    edges = 0.5 * (u[:-1] + u[1:]) if u.size > 1 else u - 0.5
    hx, hy = BinnedHistogram(edges), BinnedHistogram(edges)
    hx.update(x)
    hy.update(y)
    assert np.count_nonzero(hx.counts + hy.counts) == u.size
    return hx, hy


def samples(seed: int, n1: int, n2: int, shift: float, integer: bool) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n1)
    y = rng.normal(shift, 1.0 + shift / 2, n2)
    if integer:  # heavy ties: 3 * N(0,1) rounded
        x, y = np.round(3 * x), np.round(3 * y)
    return x, y


def hist_pair(seed: int, n1: int, n2: int, bins: int = 22) -> tuple[BinnedHistogram, ...]:
    rng = np.random.default_rng(seed)
    edges = np.sort(rng.normal(size=bins - 1))
    a, b = BinnedHistogram(edges), BinnedHistogram(edges)
    a.update(rng.normal(size=n1))
    b.update(rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), size=n2))
    return a, b


counts_st = st.lists(st.integers(0, 1000), min_size=2, max_size=30).filter(lambda c: sum(c) > 0)


def pair_from(ca: list[int], cb: list[int]) -> tuple[BinnedHistogram, BinnedHistogram]:
    k = min(len(ca), len(cb))
    edges = np.arange(k - 1, dtype=np.float64) * 0.7
    a = BinnedHistogram(edges, ca[:k])
    b = BinnedHistogram(edges, cb[:k])
    if a.total == 0 or b.total == 0:
        a, b = BinnedHistogram(edges, [*ca[: k - 1], 1]), BinnedHistogram(edges, [1, *cb[1:k]])
    return a, b


# --------------------------------------------------------------------------- KS


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize(("n1", "n2"), SIZES)
def test_ks_matches_scipy_asymp(n1: int, n2: int, shift: float, integer: bool) -> None:
    x, y = samples(n1 * 7 + n2, n1, n2, shift, integer)
    hx, hy = own_bins(x, y)
    expected = stats.ks_2samp(x, y, method="asymp")
    for got in (ks(hx, hy), ks(hy, hx)):
        assert abs(got.statistic - expected.statistic) <= 1e-12
        assert close(got.pvalue, float(expected.pvalue)), (got, expected)
        assert {got.n_ref, got.n_win} == {float(n1), float(n2)}


def test_ks_integer_values_with_half_integer_edges() -> None:
    rng = np.random.default_rng(11)
    for n1, n2, lam in [(50, 60, 3.0), (400, 150, 3.5), (2000, 2500, 4.0)]:
        x, y = rng.poisson(3.0, n1).astype(float), rng.poisson(lam, n2).astype(float)
        edges = np.arange(-1, 30) + 0.5
        hx, hy = BinnedHistogram(edges), BinnedHistogram(edges)
        hx.update(x)
        hy.update(y)
        expected = stats.ks_2samp(x, y, method="asymp")
        got = ks(hx, hy)
        assert abs(got.statistic - expected.statistic) <= 1e-12
        assert close(got.pvalue, float(expected.pvalue))


@pytest.mark.parametrize(
    ("n_eff_ref", "n_eff_win"), [(None, 40.0), (250.5, None), (12.3, 7.7), (1.0, 1.0), (1e7, 3e6)]
)
def test_ks_effective_sizes_follow_scipy_kstwo(
    n_eff_ref: float | None, n_eff_win: float | None
) -> None:
    a, b = hist_pair(3, 2000, 500)
    got = ks(a, b, n_eff_ref=n_eff_ref, n_eff_win=n_eff_win)
    n1 = a.total if n_eff_ref is None else n_eff_ref
    n2 = b.total if n_eff_win is None else n_eff_win
    big, small = max(n1, n2), min(n1, n2)
    en = max(1, round(big * small / (big + small)))
    assert got.statistic == ks(a, b).statistic
    assert close(got.pvalue, float(stats.kstwo.sf(got.statistic, en)))
    assert (got.n_ref, got.n_win) == (float(n1), float(n2))


SMALL_NS = [1, 2, 3, 4, 5, 7, 10, 16, 25, 40, 64, 100, 139, 140]
NS = [*SMALL_NS, 141, 200, 487, 1000, 4000, 30_000, 100_001, 2_000_000]


@pytest.mark.parametrize("n", NS)
def test_kolmogorov_n_sf_matches_scipy_kstwo(n: int) -> None:
    rng = np.random.default_rng(n)
    z = np.concatenate([np.linspace(0.05, 5.0, 40), rng.uniform(0.2, 3.0, 10)])
    xs = np.concatenate([z / math.sqrt(n), np.linspace(0.0, 1.0, 21), [0.5 / n, 1.0 / n]])
    for x in xs[xs <= 1.0]:
        expected = float(stats.kstwo.sf(x, n))
        assert close(kolmogorov_n_sf(n, float(x)), expected), (n, x)


def test_kolmogorov_limit_matches_scipy() -> None:
    from scipy.special import kolmogorov

    for x in np.linspace(0.0, 8.0, 801):
        assert close(kolmogorov_sf(float(x)), float(kolmogorov(x)), rtol=1e-12)


def test_ks_statistic_bounds_and_identity() -> None:
    a, b = hist_pair(5, 300, 300)
    assert ks(a, a).statistic == 0.0 and ks(a, a).pvalue == 1.0
    r = ks(a, b)
    assert 0.0 < r.statistic <= 1.0 and 0.0 <= r.pvalue <= 1.0
    with pytest.raises(StatsError):
        ks(a, b, n_eff_win=0.0)
    with pytest.raises(StatsError):
        kolmogorov_n_sf(0, 0.1)


# --------------------------------------------------------------------------- PSI, JS, W1


def test_psi_matches_formula() -> None:
    for seed in range(5):
        a, b = hist_pair(seed, 5000, 300 + 100 * seed)
        pr = np.maximum(a.counts / a.total, 1e-4)
        pw = np.maximum(b.counts / b.total, 1e-4)
        expected = sum((w - r) * math.log(w / r) for r, w in zip(pr, pw, strict=True))
        assert abs(psi(a, b) - expected) <= 1e-12
        assert psi(a, b, eps=1e-6) >= psi(a, b, eps=1e-2) >= 0.0


def test_js_and_wasserstein_match_scipy() -> None:
    for seed in range(12):
        n1, n2 = [(50, 40), (2000, 300), (20_000, 5000)][seed % 3]
        a, b = hist_pair(seed, n1, n2)
        expected_js = jensenshannon(a.counts, b.counts, base=2)
        assert abs(js_distance(a, b) - expected_js) <= 1e-12
        pos = bin_positions(a.edges)
        expected_w = stats.wasserstein_distance(pos, pos, a.counts, b.counts)
        assert abs(wasserstein(a, b) - expected_w) <= 1e-12
        assert normalised_wasserstein(a, b, 2.0) == pytest.approx(expected_w / 2.0, rel=1e-12)


def test_wasserstein_places_outer_mass_on_the_outer_edges() -> None:
    edges = np.array([0.0, 1.0, 3.0])
    a = BinnedHistogram(edges, [1, 0, 0, 0])  # all below 0 -> at 0
    b = BinnedHistogram(edges, [0, 0, 0, 1])  # all above 3 -> at 3
    c = BinnedHistogram(edges, [0, 0, 1, 0])  # midpoint 2
    assert wasserstein(a, b) == 3.0
    assert wasserstein(a, c) == 2.0
    assert bin_positions(edges).tolist() == [0.0, 0.5, 2.0, 3.0]
    single = np.array([5.0])
    assert wasserstein(BinnedHistogram(single, [3, 0]), BinnedHistogram(single, [0, 2])) == 0.0


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_normalised_wasserstein_guards_scale(scale: float) -> None:
    a, b = hist_pair(1, 100, 100)
    assert normalised_wasserstein(a, b, scale) == wasserstein(a, b)


@settings(max_examples=200, deadline=None)
@given(counts_st, counts_st)
def test_histogram_distance_properties(ca: list[int], cb: list[int]) -> None:
    a, b = pair_from(ca, cb)
    p = psi(a, b)
    assert p >= 0.0 and math.isclose(p, psi(b, a), rel_tol=1e-12, abs_tol=1e-15)
    j = js_distance(a, b)
    assert 0.0 <= j <= 1.0 and j == pytest.approx(js_distance(b, a), abs=1e-12)
    w = wasserstein(a, b)
    assert 0.0 <= w <= a.edges[-1] - a.edges[0] + 1e-12
    assert w == pytest.approx(wasserstein(b, a), abs=1e-12)
    d = ks(a, b).statistic
    assert 0.0 <= d <= 1.0 and d == ks(b, a).statistic
    assert w <= d * (a.edges[-1] - a.edges[0]) + 1e-12


@settings(max_examples=100, deadline=None)
@given(counts_st, st.integers(1, 5))
def test_identical_proportions_give_zero(ca: list[int], factor: int) -> None:
    edges = np.arange(len(ca) - 1, dtype=np.float64)
    a = BinnedHistogram(edges, ca)
    b = BinnedHistogram(edges.copy(), [c * factor for c in ca])
    assert psi(a, b) == 0.0
    assert js_distance(a, b) == 0.0
    assert wasserstein(a, b) == pytest.approx(0.0, abs=1e-12)
    assert ks(a, b).statistic == pytest.approx(0.0, abs=1e-15)
    assert ks(a, b).pvalue == pytest.approx(1.0)


def test_disjoint_histograms_reach_the_maximum() -> None:
    edges = np.array([0.0, 1.0])
    a, b = BinnedHistogram(edges, [5, 0, 0]), BinnedHistogram(edges, [0, 0, 7])
    assert js_distance(a, b) == 1.0
    assert ks(a, b).statistic == 1.0 and ks(a, b).pvalue == 0.0


@pytest.mark.parametrize(
    "fn", [psi, js_distance, wasserstein, ks, lambda a, b: normalised_wasserstein(a, b, 1.0)]
)
def test_incompatible_or_empty_histograms_raise(fn: Callable[..., object]) -> None:
    a = BinnedHistogram([0.0, 1.0, 2.0], [1, 2, 3, 4])
    other_edges = BinnedHistogram([0.0, 1.0, 2.5], [1, 2, 3, 4])
    other_size = BinnedHistogram([0.0, 1.0], [1, 2, 3])
    empty = BinnedHistogram([0.0, 1.0, 2.0])
    for b in (other_edges, other_size, empty):
        with pytest.raises(StatsError):
            fn(a, b)
        with pytest.raises(StatsError):
            fn(b, a)


def test_missing_values_are_ignored() -> None:
    a, b = hist_pair(2, 500, 200)
    b2 = BinnedHistogram(b.edges, b.counts, missing=1000)
    assert psi(a, b2) == psi(a, b) and ks(a, b2) == ks(a, b)


def test_psi_rejects_bad_eps() -> None:
    a, b = hist_pair(2, 50, 50)
    with pytest.raises(StatsError):
        psi(a, b, eps=0.0)


# --------------------------------------------------------------------------- chi-square


def test_chi2_sf_matches_scipy() -> None:
    for dof in [1, 2, 3, 4, 5, 7, 10, 25, 50, 99, 200, 1000, 0.5, 2.5]:
        for x in np.concatenate([np.geomspace(1e-6, 5000, 150), [dof, dof + 2.0]]):
            expected = float(stats.chi2.sf(x, dof))
            got = chi2_sf(float(x), dof)
            assert close(got, expected, rtol=1e-9), (dof, x, got, expected)
    assert chi2_sf(0.0, 3) == 1.0 and chi2_sf(math.inf, 3) == 0.0
    with pytest.raises(StatsError):
        chi2_sf(1.0, 0)


@pytest.mark.parametrize("seed", range(8))
def test_chi_square_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    labels = [f"c{i}" for i in range(k)]
    ref_counts = rng.multinomial(int(rng.integers(100, 50_000)), rng.dirichlet(np.ones(k)))
    win_counts = rng.multinomial(int(rng.integers(20, 2000)), rng.dirichlet(np.ones(k) * 3))
    ref = CategoricalCounts(dict(zip(labels, ref_counts.tolist(), strict=True)))
    win = CategoricalCounts(dict(zip(labels, win_counts.tolist(), strict=True)))
    union = sorted(set(ref.as_dict()) | set(win.as_dict()))
    r = np.array([ref.get(c) for c in union], float) + 0.5
    obs = np.array([win.get(c) for c in union], float)
    f_exp = obs.sum() * r / r.sum()
    expected = stats.chisquare(obs, f_exp)
    got = chi_square(ref, win)
    assert got.dof == len(union) - 1
    assert got.statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    assert close(got.pvalue, float(expected.pvalue), rtol=1e-9)
    n_eff = obs.sum() / 7.3
    scaled = chi_square(ref, win, n_eff_win=n_eff)
    assert scaled.statistic == pytest.approx(got.statistic / 7.3, rel=1e-12)
    assert close(scaled.pvalue, float(stats.chi2.sf(scaled.statistic, got.dof)), rtol=1e-9)


def test_chi_square_unseen_label_and_edge_cases() -> None:
    ref = CategoricalCounts({"person": 900, "car": 100})
    win = CategoricalCounts({"person": 40, "car": 5, "dog": 5})
    res = chi_square(ref, win)
    assert res.dof == 2 and math.isfinite(res.statistic) and res.pvalue < 1e-12
    same = chi_square(ref, CategoricalCounts({"person": 90, "car": 10}))
    assert same.statistic < 0.1 and same.pvalue > 0.9
    one = chi_square(CategoricalCounts({"a": 3}), CategoricalCounts({"a": 9}))
    assert (one.statistic, one.pvalue, one.dof) == (0.0, 1.0, 0)
    for bad in [(CategoricalCounts(), win), (ref, CategoricalCounts())]:
        with pytest.raises(StatsError):
            chi_square(*bad)
    with pytest.raises(StatsError):
        chi_square(ref, win, n_eff_win=-1.0)
    with pytest.raises(StatsError):
        chi_square(ref, win, pseudo_count=0.0)


# --------------------------------------------------------------------------- multiple tests


def test_bh_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    for m in [2, 3, 10, 25, 200]:
        p = np.concatenate([rng.uniform(size=m - m // 3), rng.uniform(0, 1e-3, size=m // 3)])
        p[: m // 4] = p[0]  # ties
        expected = stats.false_discovery_control(p, method="bh")
        got = bh_adjust(p.tolist())
        assert np.max(np.abs(np.array(got) - expected)) <= 1e-15
        for alpha in (0.01, 0.05, 0.2):
            assert benjamini_hochberg(p.tolist(), alpha) == (expected <= alpha).tolist()
    assert bh_adjust([]) == [] and bh_adjust([0.3]) == [0.3]
    assert benjamini_hochberg([]) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0).map(lambda p: 0.0 if p < 1e-300 else p), min_size=1,
                max_size=40), st.floats(1e-12, 1.0))
def test_bh_is_the_step_up_rule(pvalues: list[float], alpha: float) -> None:
    rejected = benjamini_hochberg(pvalues, alpha)
    m = len(pvalues)
    ranked = sorted(pvalues)
    k = max((i for i in range(1, m + 1) if ranked[i - 1] <= i * alpha / m), default=0)
    borderline = any(math.isclose(p * m / i, alpha, rel_tol=1e-9) for i, p in enumerate(ranked, 1))
    assert sum(rejected) == k or borderline
    kept = [p for p, r in zip(pvalues, rejected, strict=True) if not r]
    assert all(p <= min(kept, default=1.0) for p, r in zip(pvalues, rejected, strict=True) if r)
    adjusted = bh_adjust(pvalues)
    assert all(p <= q <= 1.0 for p, q in zip(pvalues, adjusted, strict=True))


@pytest.mark.parametrize("bad", [[0.1, -0.1], [1.5], [math.nan, 0.2]])
def test_bh_rejects_invalid_pvalues(bad: list[float]) -> None:
    with pytest.raises(StatsError):
        bh_adjust(bad)
    with pytest.raises(StatsError):
        benjamini_hochberg([0.1], alpha=1.5)


# --------------------------------------------------------------------------- effective size


def test_effective_sample_size() -> None:
    assert effective_sample_size(1000, 0.0) == 1000.0
    assert effective_sample_size(1000, 0.5) == pytest.approx(1000 / 3)
    assert effective_sample_size(1000, -0.4) == 1000.0  # negative r: no correction
    assert effective_sample_size(1000, 1.0) == pytest.approx(1000 * 0.01 / 1.99)  # r <= 0.99
    assert effective_sample_size(50, 0.99) == 1.0  # floored at 1
    assert effective_sample_size(0.5, 0.3) == 0.5 and effective_sample_size(0, 0.3) == 0.0
    assert effective_sample_size(1000, math.nan) == 1000.0
    with pytest.raises(StatsError):
        effective_sample_size(-1, 0.2)


def ar1(n: int, r: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=n) * math.sqrt(1 - r * r)
    x = np.empty(n)
    x[0] = rng.normal()
    for i in range(1, n):
        x[i] = r * x[i - 1] + noise[i]
    return x


def lag1(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


@pytest.mark.parametrize("r,stride", [(0.9, 4), (0.95, 3), (0.6, 2)])
def test_thinned_autocorr_matches_a_thinned_ar1_series(r: float, stride: int) -> None:
    x = ar1(400_000, r)
    assert lag1(x) == pytest.approx(r, abs=0.01)
    assert thinned_autocorr(lag1(x), stride) == pytest.approx(lag1(x[::stride]), abs=0.01)


def test_thinned_autocorr_edge_cases() -> None:
    assert thinned_autocorr(0.5, 1.0) == 0.5 and thinned_autocorr(0.5, 0.0) == 0.5
    assert thinned_autocorr(0.81, 0.5) == pytest.approx(0.9)  # frames closer than reference
    assert thinned_autocorr(0.98, 0.1) == 0.99  # clipped
    assert thinned_autocorr(-0.3, 4.0) == -0.3  # no correction to undo
    assert thinned_autocorr(math.nan, 4.0) == 0.0
    assert thinned_autocorr(1.0, 2.0) == pytest.approx(0.99 ** 2)  # clipped like the ESS


def test_thinning_keeps_the_effective_size_of_a_strongly_correlated_window() -> None:
    """Why sampling frames costs the drift tests little: 1 in 4 frames of a series with
    r = 0.95 carries almost the same number of independent observations as all of them."""
    full = effective_sample_size(400, 0.95)
    thinned = effective_sample_size(100, thinned_autocorr(0.95, 4))
    assert thinned == pytest.approx(full, rel=0.05)


@settings(max_examples=200, deadline=None)
@given(st.floats(1.0, 1e9), st.floats(-1.0, 1.0))
def test_effective_sample_size_bounds(n: float, r: float) -> None:
    ess = effective_sample_size(n, r)
    assert 1.0 <= ess <= n
    assert ess >= effective_sample_size(n, min(1.0, r + 0.1)) - 1e-9 * n


# --------------------------------------------------------------------------- module hygiene


DRIFT_MODULES = ["comparison", "distances", "kolmogorov", "chi2", "fdr", "autocorrelation"]


@pytest.mark.parametrize("name", DRIFT_MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(f"edgewatch.stats.{name}"))
    assert result.attempted > 0 and result.failed == 0


def test_no_scipy_or_outside_imports_at_run_time() -> None:
    code = (
        "import sys\n"
        + "".join(f"import edgewatch.stats.{name}\n" for name in DRIFT_MODULES)
        + "mods = [m for m in sys.modules if m.startswith(('scipy', 'edgewatch'))]\n"
        "print(' '.join(sorted(mods)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    assert not [m for m in loaded if m.startswith("scipy")]
    assert set(loaded) <= {"edgewatch", "edgewatch.errors"} | {
        m for m in loaded if m.startswith("edgewatch.stats")
    }


def test_results_are_frozen() -> None:
    a, b = hist_pair(0, 10, 10)
    r = ks(a, b)
    with pytest.raises(AttributeError):
        r.pvalue = 0.5  # type: ignore[misc]
