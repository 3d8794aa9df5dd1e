"""Data-quality faults of single frames, tracked across frames where needed (frozen, empty).

Thresholds come from the [quality] configuration; blur, greyscale, resolution and empty
output are judged against the reference profile, so they adapt to each camera.
"""

from __future__ import annotations

import math

import numpy as np

from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import QualityConfig

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


class QualityTracker:
    """Judges each measured frame; keeps the little state frozen and empty streaks need."""

    def __init__(self, cfg: QualityConfig, reference: ReferenceProfile) -> None:
        self.cfg = cfg
        self.blur_below = cfg.blur_ratio * _median_from_hist(reference, "sharpness")
        grey = reference.numeric.get("greyscale")
        self.reference_grey = bool(grey and grey.moments.mean >= 0.5)
        self.resolution = self._reference_resolution(reference)
        empty_share = _share_of_zero(reference, "det_count")
        self.watch_empty = not math.isnan(empty_share) and empty_share < 0.5
        self._prev_thumb: np.ndarray | None = None
        self._still_since: float | None = None
        self._empty_since: float | None = None

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
        if contrast <= c.blank_contrast:
            faults.append("black" if brightness <= c.black_brightness else "blank")
        if float(v["bright_fraction"]) >= c.overexposed_fraction:
            faults.append("overexposed")
        if float(v["dark_fraction"]) >= c.underexposed_fraction:
            faults.append("underexposed")
        if float(v["sharpness"]) < self.blur_below and contrast > c.blank_contrast:
            faults.append("blurred")
        if (float(v["greyscale"]) >= 0.5) != self.reference_grey:
            faults.append("greyscale_switch")
        if self.resolution is not None and (
            float(v["width"]), float(v["height"])) != self.resolution:
            faults.append("resolution_change")

    def _frozen(self, m: FrameMeasurement) -> bool:
        thumb, prev = m.thumbnail, self._prev_thumb
        self._prev_thumb = thumb
        if prev is None or thumb is None or prev.shape != thumb.shape:
            self._still_since = None
            return False
        diff = float(np.mean(np.abs(thumb - prev)))
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
