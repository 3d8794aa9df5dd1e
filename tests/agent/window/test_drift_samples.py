"""A feature votes on drift only with enough samples in the reference and in the window; the
others are reported as not voting, with why (docs/drift.md)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.window.accumulator import WindowAccumulator
from edgewatch.agent.window.drift_judge import DriftJudge
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.config.agent import DriftConfig

FRAMES = 400


def measurement(i: int, boxes: list[float], brightness: float) -> FrameMeasurement:
    """One frame: a per-frame feature and a per-detection one (with its labels)."""
    return FrameMeasurement(
        i, i / 10, {"brightness": brightness, "box_area": np.asarray(boxes, np.float64)},
        {"classes": ["person"] * len(boxes)}, None, 0.0)


def reference(boxes_at: dict[int, list[float]]) -> ReferenceProfile:
    rng = np.random.default_rng(3)
    b = ReferenceBuilder()
    for i in range(FRAMES):
        b.add(measurement(i, boxes_at.get(i, []), 120 + rng.normal(0, 1.0)))
    return b.build(model_sha256="0" * 64, model_name="m", adapter="ssd", analysis_width=160,
                   source="s", created=0.0)


def window(ref: ReferenceProfile, boxes: list[list[float]], brightness: float = 120.0
           ) -> WindowSummary:
    acc = WindowAccumulator(ref, 0.0, 10.0)
    rng = np.random.default_rng(4)
    for i, frame_boxes in enumerate(boxes):
        acc.add(measurement(i, frame_boxes, brightness + rng.normal(0, 1.0)))
    return acc.summary


def test_three_boxes_in_the_reference_do_not_make_one_box_a_drift() -> None:
    # 3 boxes in 400 reference frames: one odd box in a window used to be "drift: shifted
    # 8.9 reference SDs"
    ref = reference({10: [0.010], 11: [0.011], 12: [0.012]})
    w = window(ref, [[0.05]] + [[]] * 99)
    verdict = DriftJudge(DriftConfig(), ref).judge(w)
    assert verdict["severity"] == "ok" and not verdict["reasons"]
    assert ref.sample_size("box_area") == 3 and ref.sample_size("classes") == 3
    assert "box_area" not in verdict["features"] and "classes" not in verdict["features"]
    assert verdict["not_voting"]["box_area"] == (
        "reference: only 3 samples (at least 20, drift.min_reference_samples)")
    assert verdict["not_voting"]["classes"].startswith("reference: only 3 samples")
    assert "brightness" in verdict["features"]  # the other features still vote
    assert not verdict.get("insufficient")


def test_many_boxes_in_few_frames_are_few_samples() -> None:
    # 60 boxes, but all in 3 frames: the samples are the frames, not the boxes
    ref = reference({i: [0.01 + 0.001 * k for k in range(20)] for i in (5, 6, 7)})
    assert ref.numeric["box_area"].hist.total == 60
    assert ref.sample_size("box_area") == 3 and ref.sample_size("classes") == 3
    verdict = DriftJudge(DriftConfig(), ref).judge(window(ref, [[0.5]] * 100))
    assert set(verdict["not_voting"]) == {"box_area", "classes"}


def test_a_window_with_a_handful_of_boxes_does_not_vote() -> None:
    rng = np.random.default_rng(5)
    ref = reference({i: list(rng.uniform(0.01, 0.02, 3)) for i in range(FRAMES)})
    assert ref.sample_size("box_area") == FRAMES and not ref.excluded
    w = window(ref, [[0.3]] * 4 + [[]] * 96)  # 4 huge boxes
    verdict = DriftJudge(DriftConfig(), ref).judge(w)
    assert verdict["severity"] == "ok"
    assert verdict["not_voting"] == {
        "box_area": "window: only 4 samples (at least 5, drift.min_window_samples)",
        "classes": "window: only 4 samples (at least 5, drift.min_window_samples)",
    }
    # the same boxes in enough frames do vote, and drift
    many = DriftJudge(DriftConfig(), ref).judge(window(ref, [[0.3]] * 100))
    assert "not_voting" not in many and many["features"]["box_area"]["status"] == "drift"


def test_a_window_where_nothing_can_vote_has_no_verdict() -> None:
    ref = reference({10: [0.010], 11: [0.011], 12: [0.012]})
    judge = DriftJudge(DriftConfig(min_reference_samples=500), ref)
    verdict = judge.judge(window(ref, [[0.05]] * 100, brightness=200.0))
    assert verdict["insufficient"] and verdict["severity"] == "ok"
    assert set(verdict["not_voting"]) == {"brightness", "box_area", "classes"}
    assert verdict["reasons"][0].startswith("no feature has enough samples to vote")


def test_not_voting_survives_the_wire_form() -> None:
    ref = reference({10: [0.010], 11: [0.011], 12: [0.012]})
    w = window(ref, [[0.05]] * 100)
    DriftJudge(DriftConfig(), ref)(w)
    back = WindowSummary.from_wire(w.to_wire(), ref)
    assert back.extra["drift"]["not_voting"] == w.extra["drift"]["not_voting"]
    assert set(w.extra["drift"]["not_voting"]) == {"box_area", "classes"}
    line = w.to_v1().drift
    assert line is not None and line.not_voting == w.extra["drift"]["not_voting"]


def test_non_finite_values_are_counted_and_left_out_without_warnings() -> None:
    b = ReferenceBuilder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning may leak
        for i in range(50):
            bad = [np.inf, -np.inf] if i % 2 else [np.nan]
            b.add(FrameMeasurement(i, i / 10, {"logit": np.nan, "brightness": float(i),
                                               "box_area": np.asarray([0.1, *bad])},
                                   {}, None, 0.0))
        ref = b.build(model_sha256="0" * 64, model_name="m", adapter="raw",
                      analysis_width=160, source="s", created=0.0, min_samples=20)
    assert b.nonfinite == {"logit": 50, "box_area": 75}
    assert ref.numeric["box_area"].moments.count == 50
    assert ref.numeric["box_area"].moments.mean == pytest.approx(0.1)  # inf left out
    assert ref.excluded == {"logit": "no finite values in 50 frames (50 NaN or infinite values)"}
    assert ref.sample_size("brightness") == 50 and ref.sample_size("box_area") == 50


def test_excluded_features_are_saved_and_old_profiles_still_load(tmp_path: Path) -> None:
    ref = reference({10: [0.010], 11: [0.011], 12: [0.012]})
    b = ReferenceBuilder()
    b.extend(measurement(i, [], 120.0 + i % 3) for i in range(30))
    built = b.build(model_sha256="0" * 64, model_name="m", adapter="ssd", analysis_width=160,
                    source="s", created=0.0, min_samples=20)
    assert built.excluded == {"box_area": "no finite values in 30 frames",
                              "classes": "no labels in 30 frames"}
    path = tmp_path / "ref.json"
    built.save(path)
    loaded = ReferenceProfile.load(path)
    assert loaded.excluded == built.excluded and loaded.samples == built.samples
    assert loaded.id == built.id
    verdict = DriftJudge(DriftConfig(), loaded).judge(window(loaded, [[0.05]] * 100))
    assert verdict["not_voting"]["box_area"] == "reference: no finite values in 30 frames"
    # a profile written before samples and excluded were recorded
    old = {k: v for k, v in ref.to_dict().items() if k not in ("samples", "excluded", "id")}
    older = ReferenceProfile.from_dict({**old, "id": "0123456789abcdef"})
    assert older.samples == {} and older.excluded == {}
    assert older.sample_size("box_area") == 3 and older.sample_size("brightness") == FRAMES
