"""The no-signal fast path on real footage: black, frozen and undecodable frames are reported
once they have lasted quality.no_signal_seconds, and the signal's return once good frames
are back."""

from __future__ import annotations

import numpy as np

from edgewatch.agent.app import make_measurer
from edgewatch.agent.measure.checks import FrameChecks
from edgewatch.agent.measure.signal import SignalTracker
from edgewatch.agent.records import Frame, SignalChange
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import AgentConfig, QualityConfig

FPS = 2.5  # what the monitor measures by default


def run(cfg: AgentConfig, reference: ReferenceProfile,
        images: list[np.ndarray | None]) -> list[SignalChange]:
    checks = FrameChecks(cfg.quality, reference)
    measurer = make_measurer(cfg)
    changes = []
    for i, img in enumerate(images):
        m = measurer(Frame(i, 100.0 + i / FPS, img), None)
        checks.check(m)
        if m.signal is not None:
            changes.append(m.signal)
    return changes


def test_black_is_reported_after_no_signal_seconds_then_its_end(
        ssd_config: AgentConfig, ssd_reference: ReferenceProfile,
        vtest_frames: list[np.ndarray]) -> None:
    black = np.zeros_like(vtest_frames[0])
    images: list[np.ndarray | None] = [*vtest_frames[:10], *[black] * 20, *vtest_frames[10:20]]
    changes = run(ssd_config, ssd_reference, images)
    t = [100.0 + i / FPS for i in range(len(images))]
    # black from frame 10; 3 s later (frame 18, 7.5 frames at 2.5 fps) no signal
    assert changes[0] == SignalChange(True, "black", t[10], t[18])
    # good again from frame 30; back after 1 s of good footage (frame 33)
    assert changes[1] == SignalChange(False, "black", t[10], t[33])
    assert len(changes) == 2


def test_a_frozen_picture_counts_from_when_it_froze(
        ssd_config: AgentConfig, ssd_reference: ReferenceProfile,
        vtest_frames: list[np.ndarray]) -> None:
    images: list[np.ndarray | None] = [*vtest_frames[:5], *[vtest_frames[5]] * 15]
    [lost] = run(ssd_config, ssd_reference, images)
    t = [100.0 + i / FPS for i in range(len(images))]
    # still from frame 6 (the first repeat); frozen_seconds 2 would add 2 s more
    assert (lost.lost, lost.fault, lost.since) == (True, "frozen", t[6])
    assert 3.0 <= lost.at - lost.since < 3.0 + 1 / FPS  # the first measured frame after 3 s


def test_flickering_decode_errors_are_not_a_lost_signal(
        ssd_config: AgentConfig, ssd_reference: ReferenceProfile,
        vtest_frames: list[np.ndarray]) -> None:
    images: list[np.ndarray | None] = []
    for f in vtest_frames[:40]:
        images += [None, f]  # every other frame undecodable
    assert run(ssd_config, ssd_reference, images) == []
    assert run(ssd_config, ssd_reference, [None] * 12)[0].fault == "decode_error"


def test_zero_seconds_turns_the_fast_path_off(ssd_config: AgentConfig,
                                              ssd_reference: ReferenceProfile) -> None:
    tracker = SignalTracker.from_config(QualityConfig(no_signal_seconds=0.0))
    assert all(tracker.frame(float(t), ["black"]) is None for t in range(100))
    assert tracker.silence(1000.0, 0.0) is None


def test_silence_of_a_live_source() -> None:
    tracker = SignalTracker(3.0)
    assert tracker.silence(102.9, 100.0) is None
    lost = tracker.silence(103.0, 100.0)
    assert lost == SignalChange(True, "no_frames", 100.0, 103.0)
    assert tracker.silence(110.0, 100.0) is None  # reported once
    assert tracker.silence(110.5, 110.2) == SignalChange(False, "no_frames", 100.0, 110.5)
    assert not tracker.lost
