"""Output features of one frame: what the model said, reduced to numbers and labels.

Numeric features are either one value per frame or one value per detection (box area,
aspect); categorical features are labels counted per detection (class, position) or per
frame (predicted class).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import numpy.typing as npt

from edgewatch.agent.records import Classification, Detections, ModelOutput, RawOutputs

DETECTOR_FEATURES: dict[str, tuple[str, str]] = {
    "det_count": ("detections", "Detections at or above the operating threshold."),
    "score_max": ("score", "Highest score of any candidate (0 when there is none)."),
    "score_mean": ("score", "Mean score of the detections (missing when there are none)."),
    "near_threshold": (
        "detections", "Candidates whose score lies within the near-threshold band of the "
        "operating threshold (uncertain decisions)."
    ),
    "box_area": ("fraction of frame", "Area of each detection's box (one value per box)."),
    "box_aspect": ("log2(w/h)", "Aspect ratio of each detection's box in frame pixels."),
}
CLASSIFIER_FEATURES: dict[str, tuple[str, str]] = {
    "top1_prob": ("probability", "Probability of the predicted class."),
    "margin": ("probability", "Top-1 minus top-2 probability."),
    "prob_entropy": ("bits", "Entropy of the class probabilities."),
}
CATEGORICAL_FEATURES: dict[str, tuple[str, str]] = {
    "classes": ("label", "Detector: class of each detection; classifier: predicted class."),
    "position": ("grid cell", "Detector: 3x3 grid cell (row, column) of each box centre."),
}
RAW_STATISTICS = ("mean", "std", "min", "max")
"""Per output tensor of a 'raw' model: features named ``raw.<output>.<statistic>``."""

_CELL_NAMES = np.array([f"r{r}c{c}" for r in range(3) for c in range(3)])
"""3x3 grid cell names by index 3 * row + column."""
_add, _maximum, _minimum = np.add.reduce, np.maximum, np.minimum


@dataclasses.dataclass(slots=True)
class OutputFeatures:
    """Numeric values (scalars or per-detection arrays) and categorical labels of a frame."""

    numeric: dict[str, float | np.ndarray]
    labels: dict[str, list[str]]


class OutputFeatureExtractor:
    """Computes output features for any adapter's output."""

    def __init__(
        self,
        score_threshold: float,
        near_band: float,
        frame_aspect: float = 4.0 / 3.0,
        labels: dict[int, str] | None = None,
    ) -> None:
        self.threshold = score_threshold
        self.band = near_band
        self.frame_aspect = frame_aspect
        self.labels = labels or {}

    def label(self, class_id: int) -> str:
        return self.labels.get(class_id, str(class_id))

    def __call__(self, output: ModelOutput, frame_aspect: float | None = None) -> OutputFeatures:
        if isinstance(output, Detections):
            return self._detections(output, frame_aspect or self.frame_aspect)
        if isinstance(output, Classification):
            return self._classification(output)
        return self._raw(output)

    def _detections(self, d: Detections, aspect: float) -> OutputFeatures:
        """Per-frame and per-box features in a few whole-array operations (a frame has a
        handful of boxes, so each numpy call's overhead is what counts)."""
        keep = d.scores >= self.threshold
        scores = d.scores[keep]
        boxes = d.boxes[keep].astype(np.float64)
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            box_aspect = np.log2((w * aspect) / h)
        # centre (x, y) in thirds of the frame: cell index 3 * row + column, clipped to 0..2
        thirds = ((boxes[:, :2] + boxes[:, 2:]) * 1.5).astype(np.int64)
        _minimum(_maximum(thirds, 0, out=thirds), 2, out=thirds)
        near = np.count_nonzero(np.abs(d.scores - self.threshold) <= self.band)
        count = scores.size
        numeric: dict[str, float | np.ndarray] = {
            "det_count": float(count),
            "score_max": float(d.best_score),
            # the float32 mean, as ndarray.mean gives it
            "score_mean": float(_add(scores, None) / count) if count else float("nan"),
            "near_threshold": float(near),
            "box_area": w * h,
            "box_aspect": box_aspect,
        }
        names = self.labels
        labels = {
            "classes": [names.get(c, str(c)) for c in d.classes[keep].tolist()],
            "position": _CELL_NAMES[thirds[:, 1] * 3 + thirds[:, 0]].tolist(),
        }
        return OutputFeatures(numeric, labels)

    def _classification(self, c: Classification) -> OutputFeatures:
        p = c.probs.astype(np.float64)
        if p.size < 2:
            nan = float("nan")
            return OutputFeatures(
                {"top1_prob": nan, "margin": nan, "prob_entropy": nan}, {"classes": []}
            )
        top2 = np.partition(p, -2)[-2:]
        nz = p[p > 0]
        return OutputFeatures(
            {
                "top1_prob": float(top2[1]),
                "margin": float(top2[1] - top2[0]),
                "prob_entropy": float(-(nz * np.log2(nz)).sum()),
            },
            {"classes": [self.label(int(p.argmax()))]},
        )

    @staticmethod
    def _raw(r: RawOutputs) -> OutputFeatures:
        numeric: dict[str, float | np.ndarray] = {}
        for name, tensor in r.tensors.items():
            for stat, value in zip(RAW_STATISTICS, raw_statistics(tensor)):
                numeric[f"raw.{name}.{stat}"] = value
        return OutputFeatures(numeric, {})


_CV_DTYPES = frozenset(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16,
                                              np.int32, np.float32, np.float64))
"""The element types OpenCV's statistics take."""
_CANCELLATION = 1e8
"""One pass (a sum of squares less the squared mean) keeps the variance to about 1e-8 of
itself while the squared mean is at most this many times the variance; beyond, it is
worked out in two passes."""


def raw_statistics(tensor: npt.NDArray[np.generic]) -> tuple[float, float, float, float]:
    """Mean, standard deviation (population), minimum and maximum of a tensor's finite
    values; NaN for each when it has none.

    Runs on every measured frame of a 'raw' model, whose outputs can be large (CenterFace:
    46,000 values a frame), so it takes one pass of OpenCV's ``meanStdDev`` (sums in double)
    and one of ``minMaxLoc`` on the tensor as it is, several times faster than NumPy's
    passes over a float64 copy. NumPy's definition is the answer whenever that pass cannot
    give it: a value that is NaN or infinite, an element type OpenCV does not take
    (int64, float16, bool), or a variance too small beside the mean for one pass to keep
    (``_CANCELLATION``)."""
    x = np.asarray(tensor)
    if x.size and x.dtype in _CV_DTYPES:
        flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1] if x.ndim else 1))
        m, s = cv2.meanStdDev(flat)
        mean, std = float(m[0, 0]), float(s[0, 0])
        if (math.isfinite(mean) and math.isfinite(std)
                and mean * mean <= _CANCELLATION * std * std):
            lo, hi, _, _ = cv2.minMaxLoc(flat)
            return mean, std, float(lo), float(hi)
    values = x.astype(np.float64).ravel()
    finite = values[np.isfinite(values)]
    if not finite.size:
        return (math.nan,) * 4
    return (float(finite.mean()), float(finite.std()), float(finite.min()),
            float(finite.max()))


def load_labels(path: str, offset: int) -> dict[int, str]:
    """Class names from a file, one per line; line k (from 0) is class id k + offset."""
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        names = [line.strip() for line in fh]
    return {i + offset: n for i, n in enumerate(names) if n}
