"""Quality thresholds relative to the reference: a fault the reference itself shows often is
the scene (a bright scene is not over-exposed), while a change beyond the reference still
faults; a reference that does not show the fault keeps the absolute thresholds."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from edgewatch.agent.app import make_measurer
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.measure.quality import QualityTracker
from edgewatch.agent.records import Frame
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile
from edgewatch.config.agent import AgentConfig, QualityConfig


def brightened(frame: np.ndarray, gain: float = 2.0, offset: float = 40.0) -> np.ndarray:
    """vtest made into a bright scene: about 42 % of its pixels clip at white."""
    return cv2.convertScaleAbs(frame, alpha=gain, beta=offset)


@pytest.fixture(scope="module")
def bright_reference(ssd_config: AgentConfig, ssd_engine: InferenceEngine,
                     vtest_frames: list[np.ndarray]) -> ReferenceProfile:
    measurer = make_measurer(ssd_config)
    builder = ReferenceBuilder(ssd_config.reference.bins)
    for i, f in enumerate(vtest_frames[:60]):
        img = brightened(f)
        builder.add(measurer(Frame(i, i / 10, img), ssd_engine.infer(img)))
    return builder.build(model_sha256=ssd_engine.model_sha256, model_name="ssd",
                         adapter="ssd", analysis_width=ssd_config.features.analysis_width,
                         source="bright vtest", created=0.0)


def faults(cfg: AgentConfig, tracker: QualityTracker, engine: InferenceEngine,
           images: list[np.ndarray]) -> list[list[str]]:
    measurer = make_measurer(cfg)
    out = []
    for i, img in enumerate(images):
        # 3 s apart: no frozen verdicts between identical pictures
        out.append(tracker.check(measurer(Frame(i, 3.0 * i, img), engine.infer(img))))
    return out


def test_a_bright_reference_does_not_fault_its_own_frames(
        ssd_config: AgentConfig, ssd_engine: InferenceEngine, vtest_frames: list[np.ndarray],
        bright_reference: ReferenceProfile, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="edgewatch.agent.measure.quality"):
        tracker = QualityTracker(ssd_config.quality, bright_reference)
    assert set(tracker.adapted) == {"overexposed"}
    assert "overexposed" in caplog.text and "bright_fraction" in caplog.text  # shown at start
    own = [brightened(f) for f in vtest_frames[:60:5]]
    assert all("overexposed" not in f for f in faults(ssd_config, tracker, ssd_engine, own))
    # brighter still than anything in the reference: over-exposed after all
    glare = [brightened(f, 3.5, 60) for f in vtest_frames[:3]]
    assert all("overexposed" in f for f in faults(ssd_config, tracker, ssd_engine, glare))


def test_a_normal_reference_keeps_the_absolute_thresholds(
        ssd_config: AgentConfig, ssd_engine: InferenceEngine, vtest_frames: list[np.ndarray],
        ssd_reference: ReferenceProfile) -> None:
    tracker = QualityTracker(ssd_config.quality, ssd_reference)
    assert tracker.adapted == {}
    assert tracker.overexposed_from == ssd_config.quality.overexposed_fraction
    images = [vtest_frames[100], brightened(vtest_frames[101])]
    got = faults(ssd_config, tracker, ssd_engine, images)
    assert "overexposed" not in got[0] and "overexposed" in got[1]


def test_the_adaptation_can_be_turned_off(ssd_config: AgentConfig, ssd_engine: InferenceEngine,
                                          vtest_frames: list[np.ndarray],
                                          bright_reference: ReferenceProfile) -> None:
    cfg = QualityConfig(reference_fault_share=0.0)
    tracker = QualityTracker(cfg, bright_reference)
    assert tracker.adapted == {}
    got = faults(ssd_config, tracker, ssd_engine, [brightened(vtest_frames[0])])
    assert "overexposed" in got[0]
