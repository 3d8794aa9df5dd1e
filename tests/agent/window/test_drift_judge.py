"""Drift verdicts on real footage: quiet on a steady camera, fast on real degradation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.app import make_measurer
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.measure.checks import FrameChecks
from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.records import Frame
from edgewatch.agent.window.accumulator import WindowAccumulator
from edgewatch.agent.window.drift_judge import DriftJudge, sampling_stride
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.config.agent import AgentConfig, AlertsConfig, DriftConfig

FPS = 10.0
SPLIT = 400


class Footage:
    """Measures (possibly altered) vtest frames and judges them in 10-second windows."""

    def __init__(self, cfg: AgentConfig, engine: InferenceEngine, frames: list[np.ndarray]):
        self.cfg, self.engine, self.frames = cfg, engine, frames
        self.measurer = make_measurer(cfg)
        self.reference = self.build(self.measure(range(SPLIT)))

    def measure(self, indices: Sequence[int],
                alter: Callable[[int, np.ndarray], np.ndarray] | None = None,
                ) -> list[FrameMeasurement]:
        out = []
        for i in indices:
            image = self.frames[i] if alter is None else alter(i, self.frames[i])
            out.append(self.measurer(Frame(i, i / FPS, image), self.engine.infer(image)))
        return out

    def build(self, ms: list[FrameMeasurement]) -> ReferenceProfile:
        b = ReferenceBuilder()
        b.extend(ms)
        return b.build(model_sha256=self.engine.model_sha256, model_name="ssdlite",
                       adapter="ssd", analysis_width=160, source="vtest", created=0.0)

    def windows(self, ms: list[FrameMeasurement], reference: ReferenceProfile | None = None,
                drift: DriftConfig | None = None, size: int = 100,
                stride: int = 1) -> list[WindowSummary]:
        """Windows of ``size`` frames, measuring one frame in ``stride`` (the others are
        counted as sampled out, as the monitor does under features.max_fps)."""
        ref = reference or self.reference
        judge = DriftJudge(drift or self.cfg.drift, ref)
        checks = FrameChecks(self.cfg.quality, ref)
        out = []
        for start in range(0, len(ms), size):
            chunk = ms[start:start + size]
            acc = WindowAccumulator(ref, chunk[0].timestamp, chunk[-1].timestamp)
            for m in chunk[::stride]:
                checks(m)
                acc.add(m)
            acc.summary.frames.sampled_out = len(chunk) - len(chunk[::stride])
            judge(acc.summary)
            out.append(acc.summary)
        return out


@pytest.fixture(scope="module")
def footage(ssd_config: AgentConfig, ssd_engine: InferenceEngine,
            vtest_all_frames: list[np.ndarray]) -> Footage:
    return Footage(ssd_config, ssd_engine, vtest_all_frames)


def severities(windows: list[WindowSummary]) -> list[str]:
    return [w.extra["drift"]["severity"] for w in windows]


def test_untouched_second_half_never_drifts(footage: Footage) -> None:
    windows = footage.windows(footage.measure(range(SPLIT, len(footage.frames))))
    assert "drift" not in severities(windows)
    for w in windows:
        assert w.extra["drift"]["detected"] is False
        assert not w.quality, w.quality


def test_even_against_odd_frames_never_drifts(footage: Footage) -> None:
    ms = footage.measure(range(0, 300))
    reference = footage.build(ms[0::2])
    windows = footage.windows(ms[1::2], reference=reference, size=50)
    assert severities(windows) == ["ok"] * len(windows)
    assert default_alerts(windows) == []


def default_alerts(windows: list[WindowSummary]) -> list[dict[str, Any]]:
    """What the default alert rules of configs/agent.toml send for these windows."""
    sent: list[dict[str, Any]] = []
    engine = AlertEngine(AlertsConfig(), AlertStore(":memory:"), sent.append)
    for w in windows:
        engine.evaluate(w.to_dict())
    return sent


def test_default_alert_rules_stay_quiet_on_the_steady_camera(footage: Footage) -> None:
    windows = footage.windows(footage.measure(range(SPLIT, len(footage.frames))))
    assert default_alerts(windows) == []


def noisy(sigma: float) -> Callable[[int, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)

    def alter(_: int, image: np.ndarray) -> np.ndarray:
        return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)
    return alter


def darker(factor: float) -> Callable[[int, np.ndarray], np.ndarray]:
    def alter(_: int, image: np.ndarray) -> np.ndarray:
        return (image * factor).astype(np.uint8)
    return alter


def fogged(amount: float) -> Callable[[int, np.ndarray], np.ndarray]:
    def alter(_: int, image: np.ndarray) -> np.ndarray:
        return (image * (1 - amount) + 200 * amount).astype(np.uint8)
    return alter


@pytest.mark.parametrize(("alter", "feature"), [
    (noisy(20.0), "noise"), (darker(0.5), "brightness"), (fogged(0.6), "contrast"),
])
def test_real_degradation_is_drift_in_its_first_window(
        footage: Footage, alter: Callable[[int, np.ndarray], np.ndarray], feature: str) -> None:
    [window] = footage.windows(footage.measure(range(SPLIT, SPLIT + 100), alter))
    verdict = window.extra["drift"]
    assert verdict["severity"] == "drift" and verdict["detected"]
    assert verdict["features"][feature]["drifted"]
    assert any(r.startswith(f"{feature}: drifted") for r in verdict["reasons"])
    assert verdict["score"] >= footage.cfg.drift.immediate_effect


def test_sampled_windows_keep_their_effective_size_and_verdicts(footage: Footage) -> None:
    """One frame in 4, as features.max_fps = 2.5 gives on this 10 fps footage."""
    ms = footage.measure(range(SPLIT, len(footage.frames)))
    full, sampled = footage.windows(ms), footage.windows(ms, stride=4)
    assert "drift" not in severities(sampled)
    for f, s in zip(full, sampled, strict=True):
        assert s.frames.monitored == 25 or s is sampled[-1]
        for name in ("noise", "det_count"):  # lag-1 autocorrelation about 0.8 here
            n_full = f.extra["drift"]["features"][name]["n_eff"]
            n_sampled = s.extra["drift"]["features"][name]["n_eff"]
            assert n_sampled == pytest.approx(n_full, rel=0.2)  # r**4, not r: barely smaller
    [dark] = footage.windows(footage.measure(range(SPLIT, SPLIT + 100), darker(0.5)), stride=4)
    assert dark.extra["drift"]["severity"] == "drift"
    assert dark.extra["drift"]["features"]["brightness"]["drifted"]


@pytest.mark.parametrize(("seconds", "monitored", "sampled_out", "dropped", "interval", "k"), [
    (60.0, 150, 1650, 0, 0.1, 4.0),      # 30 fps camera, 10 fps reference, max_fps 2.5
    (60.0, 150, 1650, 0, 0.0, 12.0),     # reference interval unknown: frames only
    (10.0, 100, 0, 50, 0.1, 1.0),        # drops come in bursts: not counted as spacing
    (60.0, 1800, 0, 0, 0.1, 1 / 3),      # every frame of a camera 3x faster than the ref
    (60.0, 75, 225, 0, 0.1, 4.0),        # half the window without frames: frames win
])
def test_sampling_stride_takes_the_more_deflating_of_frames_and_time(
        footage: Footage, seconds: float, monitored: int, sampled_out: int, dropped: int,
        interval: float, k: float) -> None:
    w = WindowSummary.empty(footage.reference, 0.0, seconds)
    w.frames.monitored, w.frames.sampled_out, w.frames.dropped = monitored, sampled_out, dropped
    assert sampling_stride(w, interval) == pytest.approx(k)


def test_black_and_frozen_frames_are_reported_within_seconds(footage: Footage) -> None:
    start = SPLIT + 20  # fault begins at frame 420 (42.0 s)

    def alter(i: int, image: np.ndarray) -> np.ndarray:
        if start <= i < start + 30:
            return np.zeros_like(image)
        if i >= start + 30:
            return footage.frames[start + 30]  # the stream freezes on one picture
        return image

    [window] = footage.windows(footage.measure(range(SPLIT, SPLIT + 100), alter))
    onsets = window.quality_onsets
    assert onsets["black"] - start / FPS == pytest.approx(0.0)
    assert 0 < onsets["frozen"] - (start + 30) / FPS <= 5.0
    assert window.quality["black"] == 30
    assert "frozen" in window.quality and "blurred" not in window.quality


def synthetic_reference(shift: float) -> tuple[ReferenceProfile, list[WindowSummary]]:
    """A noisy random-walk 'brightness' feature; windows shifted by ``shift`` ref SDs."""
    rng = np.random.default_rng(1)
    walk = 120 + np.cumsum(rng.normal(0, 0.05, 2000))
    values = walk + rng.normal(0, 1.0, 2000)
    b = ReferenceBuilder()
    for i, v in enumerate(values[:1000]):
        b.add(FrameMeasurement(i, i / 10, {"brightness": float(v)}, {}, None, 0.0))
    ref = b.build(model_sha256="0" * 64, model_name="m", adapter="raw", analysis_width=256,
                  source="s", created=0.0)
    sd = ref.numeric["brightness"].moments.std
    windows = []
    for k in range(3):
        acc = WindowAccumulator(ref, 0.0, 10.0)
        for i, v in enumerate(values[1000 + 100 * k:1100 + 100 * k]):
            acc.add(FrameMeasurement(i, i / 10, {"brightness": float(v) + shift * sd}, {},
                                     None, 0.0))
        windows.append(acc.summary)
    return ref, windows


def test_moderate_drift_needs_persistence() -> None:
    ref, windows = synthetic_reference(6.0)  # between drift_effect 4 and immediate 8
    judge = DriftJudge(DriftConfig(), ref)
    assert [judge.judge(w)["severity"] for w in windows] == ["warning", "drift", "drift"]


def test_huge_shift_is_drift_at_once_and_small_one_is_ignored() -> None:
    ref, windows = synthetic_reference(12.0)
    assert DriftJudge(DriftConfig(), ref).judge(windows[0])["severity"] == "drift"
    ref, windows = synthetic_reference(0.5)
    assert {DriftJudge(DriftConfig(), ref).judge(w)["severity"] for w in windows} == {"ok"}


def test_ignored_features_and_thin_windows() -> None:
    ref, windows = synthetic_reference(12.0)
    judge = DriftJudge(DriftConfig(ignore=["brightness"]), ref)
    assert judge.judge(windows[0])["severity"] == "ok"
    thin = WindowSummary.empty(ref, 0.0, 1.0)
    verdict = DriftJudge(DriftConfig(), ref).judge(thin)
    assert verdict["insufficient"] and verdict["severity"] == "ok"
