"""The soak of a committed model update: while ``update.soak_seconds`` run, the new model's
errors and non-finite outputs, its live latency against the p95 before the commit, and its
outputs per frame against the candidate's in shadow; a failed gate rolls the update back
(:class:`edgewatch.agent.update.lifecycle.UpdateManager`).

A new onnxruntime session's first runs take much longer than the rest (they
allocate its memory and pick its kernels), and over the first ``update.soak_min_frames``
frames a p95 is all but their maximum: a good model would fail the latency gate on them.
So the committed model's session runs ``WARM_RUNS`` times on a live frame before the live
loop gets it (``warm_up``, on the update's thread), and the soak leaves the latency of its
first ``WARM_FRAMES`` frames out of the gate (a session loaded at start-up, when a soak
resumes after a restart, is cold too); their errors and non-finite outputs count.
"""

from __future__ import annotations

import collections

import numpy as np

from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import DeferredResult
from edgewatch.agent.update.compare import output_size
from edgewatch.agent.update.shadow import FrameQueue
from edgewatch.config.agent import AgentConfig
from edgewatch.contracts.update_status import Gate
from edgewatch.errors import ModelError

WARM_RUNS = 3
"""Runs of the committed model's new session before the live loop gets it."""
WARM_FRAMES = 3
"""The soak's first frames whose latency the gate leaves out."""


def warm_up(engine: InferenceEngine, frames: FrameQueue, timeout: float = 1.0) -> int:
    """Run ``engine`` WARM_RUNS times on the next live frame offered to the update (none
    within ``timeout`` seconds: not warmed); the runs made. A failure is left to the soak,
    which counts the live loop's."""
    image = frames.get(timeout)
    if image is None:
        return 0
    for run in range(WARM_RUNS):
        try:
            engine.infer(image)
        except ModelError:
            return run
    return WARM_RUNS


class Soak:
    """The committed model's watch: errors and non-finite outputs, live latency against the
    p95 before the commit, outputs per frame against the candidate's in shadow."""

    def __init__(self, cfg: AgentConfig, until: float, baseline_ms: float,
                 shadow_output: float) -> None:
        self.cfg = cfg.update
        self.threshold = cfg.model.postprocess.score_threshold
        self.until = until
        self.baseline_ms = baseline_ms
        self.shadow_output = shadow_output
        self.frames = 0
        self.bad = 0
        self.latency: collections.deque[float] = collections.deque(maxlen=500)
        self.outputs: list[float] = []

    def add(self, result: DeferredResult | None, failed: bool, decode: bool) -> None:
        self.frames += 1
        if failed or (result is not None and result.nonfinite):
            self.bad += 1
            return
        if result is None:
            return
        if self.frames > WARM_FRAMES:
            self.latency.append(result.timings.inference_ms)
        if decode:
            self.outputs.append(output_size(result.resolve().output, self.threshold))

    def gates(self) -> list[Gate]:
        u = self.cfg
        judged = max(self.frames, u.soak_min_frames)
        rate = self.bad / judged
        gates = [Gate("error_rate", rate, u.soak_max_error_rate,
                      rate <= u.soak_max_error_rate)]
        if len(self.latency) >= u.soak_min_frames and self.baseline_ms > 0:
            ratio = float(np.percentile(list(self.latency), 95)) / self.baseline_ms
            gates.append(Gate("latency_ratio", ratio, u.max_latency_ratio,
                              ratio <= u.max_latency_ratio))
        enough = len(self.outputs) >= max(3, u.soak_min_frames // u.sample_every)
        if enough and self.shadow_output > 0:
            ratio = float(np.mean(self.outputs)) / self.shadow_output
            gates.append(Gate("output_ratio", ratio, u.soak_min_output_ratio,
                              ratio >= u.soak_min_output_ratio))
        return gates
