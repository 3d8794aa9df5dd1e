"""The per-frame features, computed the cheap way, against their plain definitions.

The monitor thread computes image and output features with few, fused array operations
(int16 filters, one shifted ``absdiff`` for the colour differences, ``np.bincount`` for the
luma histogram, in-place clipping); each
test here recomputes a feature the straightforward way (float32 filters, one channel pair at
a time, ``np.clip``, ``ndarray.mean``) and expects the same value.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edgewatch.agent.measure.anomaly import MISSING_Z, Z_CLIP, AnomalyModel
from edgewatch.agent.measure.image import (
    _NOISE_FACTOR,
    _NOISE_KERNEL,
    BRIGHT_LEVEL,
    DARK_LEVEL,
    EDGE_LEVEL,
    GREY_TOLERANCE,
    ImageFeatureExtractor,
)
from edgewatch.agent.measure.outputs import OutputFeatureExtractor, raw_statistics
from edgewatch.agent.records import Detections, RawOutputs


def plain_image_features(image: np.ndarray, width: int) -> dict[str, float]:
    """The image features as first written: float32 filters, per-pair colour differences."""
    small = ImageFeatureExtractor(width).analysis_view(image)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    n = float(grey.size)
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    noise = cv2.filter2D(grey, cv2.CV_32F, _NOISE_KERNEL)
    hist = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel()
    p = hist[hist > 0] / n
    chroma = cv2.mean(cv2.absdiff(small[:, :, 2], small[:, :, 1]))[0] + cv2.mean(
        cv2.absdiff(small[:, :, 1], small[:, :, 0]))[0]
    return {
        "sharpness": float(cv2.meanStdDev(lap)[1][0, 0]) ** 2,
        "noise": _NOISE_FACTOR * float(cv2.mean(cv2.absdiff(noise, 0))[0]),
        "edge_density": float(np.count_nonzero(cv2.absdiff(lap, 0) > EDGE_LEVEL)) / n,
        "greyscale": 1.0 if chroma < GREY_TOLERANCE else 0.0,
        "saturation": float(cv2.mean(cv2.cvtColor(small, cv2.COLOR_BGR2HSV))[1]),
        # the luma histogram as OpenCV gives it (the extractor counts with np.bincount)
        "dark_fraction": float(hist[: DARK_LEVEL + 1].sum()) / n,
        "bright_fraction": float(hist[BRIGHT_LEVEL:].sum()) / n,
        "entropy": float(-(p * np.log2(p)).sum()),
    }


def test_image_features_equal_their_plain_computation(vtest_frames: list[np.ndarray]) -> None:
    rng = np.random.default_rng(7)
    images = [*vtest_frames[::20],
              rng.integers(0, 256, (97, 131, 3), np.uint8),  # odd size, below the width
              np.ascontiguousarray(vtest_frames[0][::2, ::3]),
              vtest_frames[0][10:300, 5:700],  # a non-contiguous view
              cv2.GaussianBlur(vtest_frames[1], (0, 0), 3)]
    for width in (160, 256):
        fx = ImageFeatureExtractor(width)
        for img in images:
            got, want = fx(img), plain_image_features(img, width)
            for name, value in want.items():
                assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_greyscale_is_told_by_the_channel_differences_alone() -> None:
    img = np.full((120, 160, 3), 100, np.uint8)
    img[:, :, 2] = 101  # |R-G| = 1 everywhere: below the tolerance
    assert ImageFeatureExtractor(160)(img)["greyscale"] == 1.0
    img[:, :, 0] = 98  # |G-B| = 2 more: 3 in all
    assert ImageFeatureExtractor(160)(img)["greyscale"] == 0.0


Plain = tuple[dict[str, object], dict[str, list[str]]]


def plain_detection_features(d: Detections, threshold: float, band: float, aspect: float,
                             labels: dict[int, str]) -> Plain:
    kept = d.above(threshold)
    boxes = kept.boxes.astype(np.float64)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        box_aspect = np.log2((w * aspect) / h)
    cx = np.clip(((boxes[:, 0] + boxes[:, 2]) * 1.5).astype(np.int64), 0, 2)
    cy = np.clip(((boxes[:, 1] + boxes[:, 3]) * 1.5).astype(np.int64), 0, 2)
    numeric = {
        "det_count": float(kept.scores.size),
        "score_max": d.best_score,
        "score_mean": float(kept.scores.mean()) if kept.scores.size else math.nan,
        "near_threshold": float(np.count_nonzero(np.abs(d.scores - threshold) <= band)),
        "box_area": w * h,
        "box_aspect": box_aspect,
    }
    return numeric, {"classes": [labels.get(int(c), str(int(c))) for c in kept.classes],
                     "position": [f"r{r}c{c}" for r, c in zip(cy, cx)]}


def test_detection_features_equal_their_plain_computation() -> None:
    rng = np.random.default_rng(3)
    labels = {1: "person", 3: "car"}
    out = OutputFeatureExtractor(0.5, 0.1, labels=labels)
    for k in (0, 1, 2, 7, 30):
        xy = rng.random((k, 2)).astype(np.float32)
        boxes = np.concatenate([xy, np.minimum(xy + rng.random((k, 2)) * 0.5, 1.0)],
                               axis=1).astype(np.float32)
        if k > 2:
            boxes[0] = (0.0, 0.0, 1.0, 1.0)  # centre on the cell edges
            boxes[1] = (0.2, 0.3, 0.2, 0.3)  # zero width and height
        scores = rng.random(k).astype(np.float32)
        d = Detections(boxes, scores, rng.integers(1, 5, k).astype(np.int64),
                       float(scores.max()) if k else 0.0)
        got = out(d, 16 / 9)
        numeric, cats = plain_detection_features(d, 0.5, 0.1, 16 / 9, labels)
        assert got.labels == cats
        for name, value in numeric.items():
            np.testing.assert_array_equal(got.numeric[name], value, err_msg=name)


def plain_raw_statistics(tensor: np.ndarray) -> tuple[float, ...]:
    """Mean, std, min and max of the finite values, in float64, as first written."""
    x = np.asarray(tensor, np.float64)
    finite = x[np.isfinite(x)]
    if not finite.size:
        return (math.nan,) * 4
    return finite.mean(), finite.std(), finite.min(), finite.max()


def raw_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    with_nan = rng.normal(2.0, 3.0, (1, 4, 30, 40)).astype(np.float32)
    with_nan[0, 1, 2, 3] = np.nan
    with_inf = rng.random((50, 3)).astype(np.float32)
    with_inf[7, 1] = -np.inf
    strided = rng.random((40, 60), np.float32)[::2, ::3]
    return {
        "centerface_like": rng.random((1, 10, 48, 64), np.float32) * 4 - 2,
        "float64": rng.normal(-5.0, 0.5, (3, 17)),
        "uint8": rng.integers(0, 256, (2, 3, 8, 8), np.uint8),
        "int32": rng.integers(-1000, 1000, 999).astype(np.int32),
        "int64": rng.integers(-10, 10, (4, 5)),  # not an OpenCV type
        "float16": rng.random((6, 7)).astype(np.float16),  # not an OpenCV type
        "bool": rng.random(12) > 0.5,
        "strided": strided,
        "scalar": np.float32(3.5).reshape(()),
        "constant": np.full((8, 8), 7.25, np.float32),
        # a spread too small beside the mean for one pass (sum of squares) to keep
        "offset": (1e4 + rng.random(500) * 1e-4).astype(np.float64),
        "with_nan": with_nan,
        "with_inf": with_inf,
        "all_nan": np.full((3, 3), np.nan, np.float32),
        "empty": np.zeros((0, 4), np.float32),
        "huge": np.array([3e38, 3e38, -1.0], np.float32),  # a sum of squares past float
    }


@pytest.mark.parametrize("name", list(raw_tensors()))
def test_raw_statistics_equal_their_plain_computation(name: str) -> None:
    tensor = raw_tensors()[name]
    got = raw_statistics(tensor)
    want = plain_raw_statistics(tensor)
    assert all(type(v) is float for v in got)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0.0, equal_nan=True, err_msg=name)


def test_a_raw_models_features_are_its_tensors_statistics() -> None:
    tensors = raw_tensors()
    features = OutputFeatureExtractor(0.5, 0.1)(RawOutputs(tensors), 4 / 3)
    assert features.labels == {}
    for name, tensor in tensors.items():
        for stat, value in zip(("mean", "std", "min", "max"), plain_raw_statistics(tensor)):
            np.testing.assert_allclose(features.numeric[f"raw.{name}.{stat}"], value,
                                       rtol=1e-9, equal_nan=True)


def test_anomaly_score_equals_the_clipped_robust_distance() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 4))
    model = AnomalyModel(["a", "b", "c", "d"], rng.normal(size=4), rng.random(4) + 0.5,
                         a @ a.T + np.eye(4), 1.0)
    samples: list[dict[str, float | np.ndarray]] = [
        {"a": 1.0, "b": -2.0, "c": 0.5, "d": 3.0},
        {"a": 1e9, "b": -1e9, "c": math.nan},  # clipped both ways, NaN, missing
        {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}]
    for values in samples:
        x = np.array([float(values.get(f, math.nan)) for f in model.features])  # type: ignore[arg-type]
        z = np.clip((x - model.center) / model.scale, -Z_CLIP, Z_CLIP)
        z[np.isnan(z)] = MISSING_Z
        want = math.sqrt(max(float(z @ model.precision @ z), 0.0) / 4)
        assert model.score(values) == want
