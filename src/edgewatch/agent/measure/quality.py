"""Data-quality faults of single frames, tracked across frames where needed (frozen, empty).

Thresholds come from the [quality] configuration; blur, greyscale, resolution and empty
output are judged against the reference profile, so they adapt to each camera.

Relative thresholds: a threshold fault (overexposed, underexposed, black/blank, blurred) that
at least ``quality.reference_fault_share`` of the reference's own frames already meet is the
scene, not a fault (documents, snow, a white wall, a dark scene). Its threshold then moves
just beyond the most extreme value the reference shows (its maximum, or minimum for contrast
and sharpness), so the reference's own frames do not fault and a change beyond them still
does. The adapted thresholds are logged once when the tracker is made (at start-up) and kept
in ``QualityTracker.adapted``.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import QualityConfig

log = logging.getLogger(__name__)

QUALITY_FAULTS: dict[str, str] = {
    "decode_error": "the source delivered a frame that could not be decoded",
    "black": "brightness <= quality.black_brightness and contrast <= quality.blank_contrast",
    "blank": "a uniform frame (contrast <= quality.blank_contrast) that is not black",
    "frozen": "the picture has not changed (thumbnail mean difference <= "
              "quality.frozen_max_diff) for at least quality.frozen_seconds",
    "overexposed": "bright_fraction >= quality.overexposed_fraction",
    "underexposed": "dark_fraction >= quality.underexposed_fraction",
    "blurred": "sharpness < quality.blur_ratio x the reference's median sharpness",
    "greyscale_switch": "the frame is greyscale (IR) and the reference is colour, or the "
                        "reverse",
    "resolution_change": "the frame size differs from the reference's",
    "nonfinite_output": "the model's outputs held NaN or Inf",
    "empty_output_streak": "no detection for quality.empty_streak_seconds on a camera whose "
                           "reference frames usually have detections",
    "inference_error": "the model failed on the frame (onnxruntime raised)",
}


def _median_from_hist(ref: ReferenceProfile, feature: str) -> float:
    feat = ref.numeric.get(feature)
    if feat is None or feat.hist.total == 0:
        return math.nan
    cdf = feat.hist.cdf()
    idx = int(np.searchsorted(cdf, 0.5))  # bin holding the median
    edges = feat.hist.edges
    return float(edges[min(max(idx - 1, 0), edges.size - 1)])


def _share_of_zero(ref: ReferenceProfile, feature: str) -> float:
    feat = ref.numeric.get(feature)
    if feat is None or feat.hist.total == 0:
        return math.nan
    edges = feat.hist.edges
    i = int(np.searchsorted(edges, 0.0, side="right"))  # bin index holding 0.0
    if i == 0 or edges[i - 1] != 0.0:
        return 0.0
    return float(feat.hist.counts[i]) / feat.hist.total


def _share(ref: ReferenceProfile, feature: str, threshold: float, above: bool) -> float:
    """Share of the reference's frames with ``feature >= threshold`` (``above``) or
    ``feature <= threshold`` (not ``above``), from its histogram (linear within the bin
    holding the threshold); NaN when the reference lacks the feature."""
    feat = ref.numeric.get(feature)
    if feat is None or feat.hist.total == 0 or math.isnan(threshold):
        return math.nan
    m = feat.moments
    if (above and threshold <= m.min) or (not above and threshold >= m.max):
        return 1.0
    if (above and threshold > m.max) or (not above and threshold < m.min):
        return 0.0
    # bins: (-inf, e0), [e0, e1), ..., [e_last, inf); the reference lies in [min, max]
    edges, counts = feat.hist.edges, feat.hist.counts.astype(np.float64)
    lo = np.concatenate([[m.min], edges])
    hi = np.concatenate([edges, [m.max]])
    lo, hi = np.clip(lo, m.min, m.max), np.clip(hi, m.min, m.max)
    width = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        below = np.where(width > 0, (threshold - lo) / width, (threshold > lo) * 1.0)
    below = np.clip(below, 0.0, 1.0)
    part = 1.0 - below if above else below
    return float((counts * part).sum() / counts.sum())


class QualityTracker:
    """Judges each measured frame; keeps the little state frozen and empty streaks need."""

    def __init__(self, cfg: QualityConfig, reference: ReferenceProfile) -> None:
        self.cfg = cfg
        self.overexposed_from = cfg.overexposed_fraction
        self.underexposed_from = cfg.underexposed_fraction
        self.uniform_upto = cfg.blank_contrast
        self.blur_below = cfg.blur_ratio * _median_from_hist(reference, "sharpness")
        self.adapted: dict[str, str] = {}
        """Faults whose threshold follows the reference: fault -> what and why."""
        self._relative_thresholds(reference)
        grey = reference.numeric.get("greyscale")
        self.reference_grey = bool(grey and grey.moments.mean >= 0.5)
        self.resolution = self._reference_resolution(reference)
        empty_share = _share_of_zero(reference, "det_count")
        self.watch_empty = not math.isnan(empty_share) and empty_share < 0.5
        self._prev_thumb: np.ndarray | None = None
        self._still_since: float | None = None
        self._empty_since: float | None = None

    def _relative_thresholds(self, ref: ReferenceProfile) -> None:
        """Move each threshold the reference's own frames meet often beyond the reference."""
        material = self.cfg.reference_fault_share
        if material <= 0:
            return
        checks = (  # (faults, feature, current threshold, fault above it, attribute)
            ("overexposed", "bright_fraction", self.overexposed_from, True, "overexposed_from"),
            ("underexposed", "dark_fraction", self.underexposed_from, True,
             "underexposed_from"),
            ("black/blank", "contrast", self.uniform_upto, False, "uniform_upto"),
            ("blurred", "sharpness", self.blur_below, False, "blur_below"),
        )
        for fault, feature, threshold, above, attr in checks:
            share = _share(ref, feature, threshold, above)
            if math.isnan(share) or share < material:
                continue
            m = ref.numeric[feature].moments
            # strictly beyond the reference's extreme: "feature >= t" / "feature <= t"
            # (blur: "feature < t") is then false on every reference frame
            if attr == "blur_below":
                new = m.min
            else:
                new = float(np.nextafter(m.max, np.inf) if above else np.nextafter(m.min, -np.inf))
            setattr(self, attr, new)
            op = ">=" if above else ("<" if attr == "blur_below" else "<=")
            self.adapted[fault] = (
                f"{feature} {op} {new:.6g} (was {threshold:.6g}: {share:.0%} of the "
                f"reference's frames met it)")
            log.info("quality: the reference shows %s on %.0f%% of its frames; judged "
                     "relative to it: %s %s %.6g (was %.6g)", fault, share * 100, feature, op,
                     new, threshold)

    @staticmethod
    def _reference_resolution(ref: ReferenceProfile) -> tuple[float, float] | None:
        w, h = ref.numeric.get("width"), ref.numeric.get("height")
        if w is None or h is None or w.moments.count == 0:
            return None
        if w.moments.min != w.moments.max or h.moments.min != h.moments.max:
            return None  # the reference itself mixes sizes
        return (w.moments.mean, h.moments.mean)

    def check(self, m: FrameMeasurement) -> list[str]:
        faults: list[str] = []
        if m.nonfinite:
            faults.append("nonfinite_output")
        if m.decode_error:
            faults.append("decode_error")
        if m.inference_error:
            faults.append("inference_error")
        if m.thumbnail is None:
            return faults
        self._image_faults(m.numeric, faults)
        uniform = "black" in faults or "blank" in faults
        if self._frozen(m) and not uniform:  # a black stream is reported as black
            faults.append("frozen")
        if self._empty_streak(m):
            faults.append("empty_output_streak")
        return faults

    def _image_faults(self, v: dict[str, float | np.ndarray], faults: list[str]) -> None:
        c = self.cfg
        brightness, contrast = float(v["brightness"]), float(v["contrast"])
        if contrast <= self.uniform_upto:
            faults.append("black" if brightness <= c.black_brightness else "blank")
        if float(v["bright_fraction"]) >= self.overexposed_from:
            faults.append("overexposed")
        if float(v["dark_fraction"]) >= self.underexposed_from:
            faults.append("underexposed")
        if float(v["sharpness"]) < self.blur_below and contrast > self.uniform_upto:
            faults.append("blurred")
        if (float(v["greyscale"]) >= 0.5) != self.reference_grey:
            faults.append("greyscale_switch")
        if self.resolution is not None and (
            float(v["width"]), float(v["height"])) != self.resolution:
            faults.append("resolution_change")

    @property
    def frozen_since(self) -> float | None:
        """Footage time since which the picture has not changed (None: it is changing)."""
        return self._still_since

    def _frozen(self, m: FrameMeasurement) -> bool:
        thumb, prev = m.thumbnail, self._prev_thumb
        self._prev_thumb = thumb
        if prev is None or thumb is None or prev.shape != thumb.shape:
            self._still_since = None
            return False
        # np.mean(np.abs(thumb - prev)) without np.mean's Python wrapper: the same float32
        # sum divided by the count
        diff = float(np.add.reduce(np.abs(thumb - prev), None) / thumb.size)
        if diff > self.cfg.frozen_max_diff:
            self._still_since = None
            return False
        if self._still_since is None:
            self._still_since = m.timestamp
        return m.timestamp - self._still_since >= self.cfg.frozen_seconds

    def _empty_streak(self, m: FrameMeasurement) -> bool:
        count = m.numeric.get("det_count")
        if not self.watch_empty or count is None:
            return False
        if float(count) > 0:  # type: ignore[arg-type]
            self._empty_since = None
            return False
        if self._empty_since is None:
            self._empty_since = m.timestamp
        return m.timestamp - self._empty_since >= self.cfg.empty_streak_seconds
