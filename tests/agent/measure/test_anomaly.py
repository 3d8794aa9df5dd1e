"""The per-frame anomaly score (edgewatch.agent.measure.anomaly): robust scaling against
scipy, calibration on the reference, missing features, serialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from edgewatch.agent.measure.anomaly import (
    CALIBRATION_QUANTILE,
    MISSING_Z,
    AnomalyModel,
    fit,
)

FEATURES = ["brightness", "contrast", "sharpness"]
Frame = dict[str, float | np.ndarray]


def reference(n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 1))
    noise = rng.normal(size=(n, 3))
    return np.hstack([100 + 10 * base + noise[:, :1], 40 + 5 * base + noise[:, 1:2],
                      500 + 50 * noise[:, 2:]])


def test_scale_is_the_normal_consistent_mad_of_scipy() -> None:
    m = reference()
    model = fit(FEATURES, m, np.zeros(3))
    assert model is not None
    assert np.allclose(model.center, np.median(m, axis=0))
    assert np.allclose(model.scale, sps.median_abs_deviation(m, axis=0, scale="normal"),
                       rtol=1e-4)


def test_about_half_a_percent_of_reference_frames_are_over_the_threshold() -> None:
    m = reference()
    model = fit(FEATURES, m, np.zeros(3))
    assert model is not None
    over = np.mean(model.scores(m) > model.threshold)
    assert over == pytest.approx(1 - CALIBRATION_QUANTILE, abs=0.002)


def test_one_frame_scores_like_the_batch_and_far_frames_score_high() -> None:
    m = reference()
    model = fit(FEATURES, m, np.zeros(3))
    assert model is not None
    row = dict(zip(FEATURES, m[7]))
    assert model.score(row) == pytest.approx(float(model.scores(m[7:8])[0]))
    typical = dict(zip(FEATURES, np.median(m, axis=0)))
    assert model.score(typical) < 0.1
    # brightness up and contrast down together break the reference correlation
    odd: Frame = {"brightness": 120.0, "contrast": 30.0, "sharpness": 500.0}
    assert model.score(odd) > model.threshold


def test_one_feature_score_is_the_robust_z_score() -> None:
    x = np.random.default_rng(4).normal(3.0, 2.0, size=(500, 1))
    model = fit(["noise"], x, np.zeros(1))
    assert model is not None
    z = (7.0 - np.median(x)) / sps.median_abs_deviation(x[:, 0], scale="normal")
    assert model.score({"noise": 7.0}) == pytest.approx(abs(z), rel=1e-3)
    assert model.score({}) == pytest.approx(MISSING_Z)


def test_floors_keep_a_near_constant_feature_from_exploding() -> None:
    m = reference()
    m[:, 2] = 500.0 + np.random.default_rng(1).normal(0, 1e-9, size=len(m))
    floored = fit(FEATURES, m, np.array([1.0, 1.0, 25.0]))
    assert floored is not None and floored.scale[2] == 25.0
    shifted = dict(zip(FEATURES, np.median(m, axis=0)))
    shifted["sharpness"] += 1.0  # far below the floor: noise, not an anomaly
    assert floored.score(shifted) < floored.threshold


def test_too_few_frames_or_no_varying_feature_fit_nothing() -> None:
    assert fit(FEATURES, reference(19), np.zeros(3)) is None
    assert fit(FEATURES, np.ones((100, 3)), np.zeros(3)) is None
    with_nan = reference()
    with_nan[5, 1] = math.nan
    model = fit(FEATURES, with_nan, np.zeros(3))
    assert model is not None and model.features == ["brightness", "sharpness"]


def test_the_model_round_trips_through_a_dict() -> None:
    model = fit(FEATURES, reference(), np.zeros(3))
    assert model is not None
    again = AnomalyModel.from_dict(model.to_dict())
    assert again.features == model.features and again.threshold == model.threshold
    frame: Frame = {"brightness": 90.0, "contrast": 47.0, "sharpness": 420.0}
    assert again.score(frame) == model.score(frame)
