"""The soak's gates (edgewatch.agent.update.soak) on frames that failed: the error rate is
judged against at least ``update.soak_min_frames`` frames, and the latency and output gates
wait until frames with results arrive; a new session's first runs: the warm-up of the
committed model's session and of both shadow sessions. The soak on a real model:
test_update_lifecycle.py."""

from __future__ import annotations

import threading

import numpy as np

from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import DeferredResult, InferenceResult, RawOutputs, Timings
from edgewatch.agent.update.shadow import FrameQueue, validate
from edgewatch.agent.update.soak import WARM_FRAMES, WARM_RUNS, Soak, warm_up
from edgewatch.config.agent import AgentConfig, parse_config


def soak_of(**update: float) -> Soak:
    return Soak(parse_config({"update": update}), until=0.0, baseline_ms=10.0,
                shadow_output=1.0)


def test_failed_frames_fail_the_error_rate_gate() -> None:
    soak = soak_of(soak_min_frames=10, soak_max_error_rate=0.1)
    for _ in range(20):
        soak.add(None, failed=True, decode=True)
    gates = soak.gates()
    assert [g.name for g in gates] == ["error_rate"]
    assert (soak.frames, soak.bad) == (20, 20)
    assert gates[0].value == 1.0 and gates[0].limit == 0.1 and not gates[0].passed


def test_a_few_failures_count_against_the_minimum_frames() -> None:
    soak = soak_of(soak_min_frames=100, soak_max_error_rate=0.05)
    for _ in range(4):
        soak.add(None, failed=True, decode=False)
    [gate] = soak.gates()
    assert gate.value == 4 / 100 and gate.passed
    soak.add(None, failed=True, decode=False)
    soak.add(None, failed=True, decode=False)
    [gate] = soak.gates()
    assert gate.value == 6 / 100 and not gate.passed


def test_frames_without_a_result_are_counted_not_judged() -> None:
    soak = soak_of(soak_min_frames=5)
    for _ in range(50):
        soak.add(None, failed=False, decode=True)
    assert (soak.frames, soak.bad) == (50, 0)
    assert not soak.latency and not soak.outputs
    [gate] = soak.gates()
    assert gate.name == "error_rate" and gate.value == 0.0 and gate.passed


def timed(inference_ms: float) -> DeferredResult:
    return DeferredResult(lambda: RawOutputs({}), Timings(inference_ms=inference_ms))


def test_a_new_sessions_first_runs_are_left_out_of_the_latency_gate() -> None:
    """A fresh onnxruntime session's first runs are slow (its memory, its kernels): over
    the first frames a p95 is all but their maximum. The soak leaves the first WARM_FRAMES
    frames' latency out; a model that is slow on every frame still fails."""
    soak = soak_of(soak_min_frames=10, max_latency_ratio=2.0)  # the p95 before: 10 ms
    for _ in range(WARM_FRAMES):
        soak.add(timed(30.0), failed=False, decode=False)
    for _ in range(10):
        soak.add(timed(10.0), failed=False, decode=False)
    latency = {g.name: g for g in soak.gates()}["latency_ratio"]
    assert latency.value == 1.0 and latency.passed

    slow = soak_of(soak_min_frames=10, max_latency_ratio=2.0)
    for _ in range(WARM_FRAMES + 10):
        slow.add(timed(30.0), failed=False, decode=False)
    latency = {g.name: g for g in slow.gates()}["latency_ratio"]
    assert latency.value == 3.0 and not latency.passed


def test_warm_up_runs_the_new_session_on_a_live_frame(ssd_config: AgentConfig,
                                                      vtest_frames: list[np.ndarray]) -> None:
    engine = InferenceEngine(ssd_config.model)
    frames = FrameQueue(2)
    assert warm_up(engine, frames, timeout=0.01) == 0  # no live frame: not warmed
    frames.offer(vtest_frames[0])
    assert warm_up(engine, frames, timeout=1.0) == WARM_RUNS
    assert frames.get(0.01) is None  # the frame was taken


def test_validation_runs_the_current_models_shadow_session_too(
        ssd_config: AgentConfig, vtest_frames: list[np.ndarray]) -> None:
    """Both shadow sessions are new: their first, slow runs happen in validation, so the
    shadow's latency gate times neither (a cold current model made a slow candidate look
    fast enough)."""

    class Counted(InferenceEngine):
        runs = 0

        def infer(self, image: np.ndarray) -> InferenceResult:
            self.runs += 1
            return super().infer(image)

    candidate, current = InferenceEngine(ssd_config.model), Counted(ssd_config.model)
    frames = FrameQueue(3)
    for image in vtest_frames[:3]:
        frames.offer(image)
    validate(candidate, frames, 3, 10.0, threading.Event(), current)
    assert current.runs == 3
