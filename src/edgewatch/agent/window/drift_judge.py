"""Drift verdicts per window that hold up on video.

Frames from one camera are strongly autocorrelated, so a window of 100 frames may carry the
information of a handful of independent ones. The rule (see docs/drift.md):

1. **Effect size** per numeric feature: the larger of the histogram Wasserstein-1 distance
   and the exact mean shift, in units of the reference's standard deviation (floored at the
   feature's smallest meaningful change, ``edgewatch.agent.window.scales``). For label mixes: the
   Jensen-Shannon distance.
2. **Significance with an effective sample size**: a KS test and a mean-shift z-test whose
   sample sizes are deflated by the reference's lag-1 autocorrelation (AR(1) effective
   size; r**k for a window whose measured frames are k reference frame steps apart); the
   smaller p-value, doubled.
   Label mixes: chi-square with the same deflation.
3. **Correction across features**: Benjamini-Hochberg at ``drift.alpha``. Only features
   with ``drift.min_reference_samples`` samples in the reference and
   ``drift.min_window_samples`` in the window vote (a sample: a finite value, the detections
   of one frame counted once); the others are listed in ``not_voting`` with why.
4. **Persistence**: a feature drifted in ``drift.persistence`` consecutive windows (or with
   an effect of ``drift.immediate_effect`` or more) makes the verdict ``drift``; anything
   significant at or above the warning effect makes it ``warning``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.scales import min_scale
from edgewatch.agent.window.summary import NumericWindow, WindowSummary
from edgewatch.config.agent import DriftConfig
from edgewatch.errors import StatsError
from edgewatch.stats import CategoricalCounts
from edgewatch.stats.autocorrelation import effective_sample_size, thinned_autocorr
from edgewatch.stats.chi2 import chi_square
from edgewatch.stats.distances import psi, wasserstein
from edgewatch.stats.fdr import bh_adjust
from edgewatch.stats.kolmogorov import ks

SEVERITIES = ("ok", "warning", "drift")


@dataclasses.dataclass
class FeatureVerdict:
    name: str
    effect: float
    p: float
    stats: dict[str, float]
    p_adjusted: float = 1.0
    status: str = "ok"
    streak: int = 0
    confirmed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: _finite(v) for k, v in self.stats.items()},
            "effect": _finite(self.effect), "p": _finite(self.p),
            "p_adjusted": _finite(self.p_adjusted), "status": self.status,
            "streak": self.streak, "drifted": self.confirmed,
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _norm_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def categorical_js(ref: CategoricalCounts, win: CategoricalCounts) -> float:
    """Jensen-Shannon distance (base 2) between two label mixes."""
    labels = sorted(set(ref.labels()) | set(win.labels()))
    p = np.array([ref.get(k) for k in labels], np.float64)
    q = np.array([win.get(k) for k in labels], np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def sampling_stride(summary: WindowSummary, reference_interval: float = 0.0) -> float:
    """Reference frame steps between a window's measured frames: 1 when every frame was
    measured at the reference's frame rate.

    Counted in frames (seen per measured, drops left out: they come in bursts) and, when
    the reference's frame interval is known, in time (window length per measured frame);
    the smaller, which deflates more, is used. A camera faster than the reference footage
    thus gives a stride below 1.
    """
    f = summary.frames
    if f.monitored <= 0:
        return 1.0
    frames = max(1.0, (f.monitored + f.sampled_out) / f.monitored)
    length = summary.end - summary.start
    if reference_interval > 0 and length > 0:
        return min(frames, length / f.monitored / reference_interval)
    return frames


class DriftJudge:
    """Attaches a ``drift`` verdict to each window; keeps per-feature persistence streaks.

    The monitor's ``WindowJudge``: it stores ``judge(summary)`` as ``summary.extra["drift"]``.
    """

    name = "drift"
    """Where the verdict goes in ``WindowSummary.extra`` (and the summary line)."""

    def __init__(self, cfg: DriftConfig, reference: ReferenceProfile) -> None:
        self.cfg = cfg
        self.reference = reference
        self.streaks: dict[str, int] = {}
        per_detection = [ref.lag1_autocorr for name, ref in reference.numeric.items()
                         if not ref.per_frame or name == "det_count"]
        self._label_autocorr = max(per_detection, default=0.0)

    def __call__(self, summary: WindowSummary) -> None:
        """Judge ``summary`` and attach the verdict, as the monitor does."""
        summary.extra[self.name] = self.judge(summary)

    def judge(self, summary: WindowSummary) -> dict[str, Any]:
        if summary.frames.monitored < self.cfg.min_frames:
            return {"detected": False, "severity": "ok", "score": 0.0, "insufficient": True,
                    "reasons": [f"only {summary.frames.monitored} monitored frames (fewer "
                                f"than drift.min_frames; see features.max_fps)"],
                    "features": {}}
        stride = sampling_stride(summary, self.reference.frame_interval)
        not_voting: dict[str, str] = {}
        verdicts = self._numeric(summary, stride, not_voting) \
            + self._categorical(summary, stride, not_voting)
        adjusted = bh_adjust([v.p for v in verdicts]) if verdicts else []
        for v, p_adj in zip(verdicts, adjusted):
            v.p_adjusted = p_adj
            self._classify(v)
        for name in not_voting:
            self.streaks[name] = 0
        overall = self._overall(verdicts)
        if not_voting:
            overall["not_voting"] = dict(sorted(not_voting.items()))
            if not verdicts:
                overall["insufficient"] = True
                overall["reasons"] = [f"no feature has enough samples to vote "
                                      f"({len(not_voting)} left out, see not_voting)"]
        return overall

    def _left_out(self, name: str, n_win: int) -> str:
        """Why a feature does not vote in this window ("" when it does)."""
        c = self.cfg
        if name in self.reference.excluded:
            return f"reference: {self.reference.excluded[name]}"
        n_ref = self.reference.sample_size(name)
        if n_ref < c.min_reference_samples:
            return (f"reference: only {n_ref} samples (at least {c.min_reference_samples}, "
                    f"drift.min_reference_samples)")
        if n_win < c.min_window_samples:
            return (f"window: only {n_win} samples (at least {c.min_window_samples}, "
                    f"drift.min_window_samples)")
        return ""

    # -- per feature ------------------------------------------------------------------

    def _numeric(self, summary: WindowSummary, stride: float,
                 not_voting: dict[str, str]) -> list[FeatureVerdict]:
        out = []
        frames_win = summary.frames.monitored
        for name, ref in self.reference.numeric.items():
            if name in self.cfg.ignore:
                continue
            win = summary.numeric.get(name)
            # Per-detection values (box_area) are deflated like per-frame ones: the same
            # objects are seen frame after frame, so frames with values, not boxes, are the
            # samples (and never more than the values).
            n_ref = self.reference.sample_size(name)
            n_win = min(frames_win, win.hist.total) if win is not None else 0
            why = self._left_out(name, n_win)
            if why:
                not_voting[name] = why
                continue
            assert win is not None
            r = ref.lag1_autocorr
            out.append(self._numeric_verdict(name, ref.hist, ref.moments.mean,
                                             ref.moments.std, win, r, n_ref, n_win, stride))
        return out

    def _numeric_verdict(self, name: str, ref_hist: Any, ref_mean: float, ref_std: float,
                         win: NumericWindow, r: float, n_ref: int, n_win: int,
                         stride: float) -> FeatureVerdict:
        scale = max(ref_std, min_scale(name))
        shift = (win.moments.mean - ref_mean) / scale
        w1 = wasserstein(ref_hist, win.hist) / scale
        ess_ref = effective_sample_size(max(min(n_ref, ref_hist.total), 1), r)
        ess_win = effective_sample_size(max(min(n_win, win.hist.total), 1),
                                        thinned_autocorr(r, stride))
        # both sizes are frame counts; per-detection histograms hold more values than frames
        k = ks(ref_hist, win.hist, n_eff_ref=ess_ref, n_eff_win=ess_win)
        z = shift / math.sqrt(1.0 / ess_win + 1.0 / ess_ref)
        p = min(1.0, 2.0 * min(k.pvalue, _norm_two_sided(z)))
        stats = {
            "psi": psi(ref_hist, win.hist), "ks": k.statistic, "ks_p": k.pvalue,
            "wasserstein": w1, "mean_shift": shift, "n_eff": ess_win,
        }
        return FeatureVerdict(name, max(w1, abs(shift)), p, stats)

    def _categorical(self, summary: WindowSummary, stride: float,
                     not_voting: dict[str, str]) -> list[FeatureVerdict]:
        out = []
        for name, ref in self.reference.categorical.items():
            if name in self.cfg.ignore:
                continue
            win = summary.categorical.get(name)
            n_win = min(win.total, summary.frames.monitored) if win is not None else 0
            why = self._left_out(name, n_win)
            if why:
                not_voting[name] = why
                continue
            assert win is not None
            ess = effective_sample_size(n_win, thinned_autocorr(self._label_autocorr, stride))
            try:
                chi = chi_square(ref, win, n_eff_win=ess)
                p = chi.pvalue
            except StatsError:
                p = 1.0
            js = categorical_js(ref, win)
            out.append(FeatureVerdict(name, js, p, {"js": js, "n_eff": ess}))
        return out

    # -- decisions --------------------------------------------------------------------

    def _classify(self, v: FeatureVerdict) -> None:
        c = self.cfg
        categorical = v.name in self.reference.categorical
        warn = c.categorical_warning_js if categorical else c.warning_effect
        drift = c.categorical_drift_js if categorical else c.drift_effect
        significant = v.p_adjusted <= c.alpha
        if significant and v.effect >= drift:
            v.status = "drift"
        elif significant and v.effect >= warn:
            v.status = "warning"
        streak = self.streaks.get(v.name, 0) + 1 if v.status == "drift" else 0
        self.streaks[v.name] = v.streak = streak
        immediate = not categorical and v.effect >= c.immediate_effect
        v.confirmed = v.status == "drift" and (streak >= c.persistence or immediate)

    def _overall(self, verdicts: list[FeatureVerdict]) -> dict[str, Any]:
        confirmed = [v for v in verdicts if v.confirmed]
        flagged = [v for v in verdicts if v.status != "ok"]
        severity = "drift" if confirmed else "warning" if flagged else "ok"
        significant = [v.effect for v in verdicts if v.p_adjusted <= self.cfg.alpha]
        reasons = [self._reason(v) for v in sorted(flagged, key=lambda v: -v.effect)]
        return {
            "detected": severity == "drift",
            "severity": severity,
            "score": float(max(significant, default=0.0)),
            "reasons": reasons,
            "features": {v.name: v.to_dict() for v in verdicts},
        }

    def _reason(self, v: FeatureVerdict) -> str:
        c = self.cfg
        if v.name in self.reference.categorical:
            what = f"label mix JS distance {v.effect:.2f} (warning {c.categorical_warning_js}, " \
                   f"drift {c.categorical_drift_js})"
        else:
            what = f"shifted {v.effect:.1f} reference SDs (warning {c.warning_effect:g}, " \
                   f"drift {c.drift_effect:g})"
        state = "drifted" if v.confirmed else v.status
        return (f"{v.name}: {state}: {what}, adjusted p {v.p_adjusted:.2g} <= {c.alpha:g}, "
                f"{v.streak} window(s) in a row")
