"""The shadow run: the candidate beside the current model, on sampled frames, off the live
loop.

A thread of its own with two onnxruntime sessions of one intra-op thread each (the current
model's file and the candidate's), fed by a bounded queue the live loop offers sampled
frames to (``offer`` never waits: when the shadow is behind, the frame is dropped and
counted). Both models run here on the same frames, so the latency ratio compares like with
like and the live loop keeps its own sessions' threads and rate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable

from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.inference.model_check import probe
from edgewatch.agent.records import Image
from edgewatch.agent.update.compare import Comparison
from edgewatch.config.maintenance import UpdateConfig
from edgewatch.config.model import ModelConfig
from edgewatch.errors import EdgewatchError

log = logging.getLogger(__name__)


class Rejection(EdgewatchError):
    """The candidate failed validation or the shadow: the message is the reason."""


def shadow_model_config(model: ModelConfig, path: str, labels: str | None = None) -> ModelConfig:
    """``model`` for a shadow session: ``path``, one intra-op thread, no spinning."""
    return dataclasses.replace(model, path=path, labels=labels if labels is not None else
                               model.labels, intra_op_threads=1, allow_spinning=False)


class FrameQueue:
    """A bounded queue of sampled frames: ``offer`` drops when full."""

    def __init__(self, size: int) -> None:
        self._q: queue.Queue[Image] = queue.Queue(maxsize=size)
        self.offered = 0
        self.dropped = 0

    def offer(self, image: Image) -> None:
        self.offered += 1
        try:
            self._q.put_nowait(image)
        except queue.Full:
            self.dropped += 1

    def get(self, timeout: float) -> Image | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None


def load_candidate(model: ModelConfig) -> InferenceEngine:
    """The candidate loaded and checked against the adapter (input shape and dtype, the
    outputs the adapter reads), and a black frame through it and the adapter's decoding."""
    try:
        engine = InferenceEngine(model)
        probe(engine.session, model, engine.input, engine.adapter)
    except EdgewatchError as exc:
        raise Rejection(f"check: {exc}") from exc
    return engine


def validate(candidate: InferenceEngine, frames: FrameQueue, count: int, timeout: float,
             stop: threading.Event, current: InferenceEngine | None = None) -> None:
    """``count`` sampled frames through the candidate: raise Rejection on a failure or a
    non-finite output. Each frame also goes through ``current`` (the current model's shadow
    session, its result unused): a new session's first runs take much longer than the
    rest, and the shadow's latency gate must time neither session's."""
    done = 0
    deadline = time.monotonic() + timeout
    while done < count and not stop.is_set():
        if time.monotonic() > deadline:
            raise Rejection(f"validation: only {done} of {count} frames arrived in "
                            f"{timeout:g} s")
        image = frames.get(0.2)
        if image is None:
            continue
        try:
            result = candidate.infer(image)
        except EdgewatchError as exc:
            raise Rejection(f"validation: {exc}") from exc
        if result.nonfinite:
            raise Rejection("validation: non-finite outputs (NaN or Inf) on a sampled frame")
        if current is not None:
            with contextlib.suppress(EdgewatchError):  # the shadow skips its failures too
                current.infer(image)
        done += 1


def run_shadow(current: InferenceEngine, candidate: InferenceEngine, frames: FrameQueue,
               cfg: UpdateConfig, threshold: float, stop: threading.Event,
               progress: Callable[[Comparison], None] | None = None) -> Comparison:
    """Both models on sampled frames until ``update.shadow_frames`` are compared or
    ``update.shadow_seconds`` have passed. A failure or non-finite output of the candidate
    is a Rejection; a failure of the current model skips the frame."""
    tally = Comparison(threshold)
    deadline = time.monotonic() + cfg.shadow_seconds
    while tally.frames < cfg.shadow_frames and time.monotonic() < deadline \
            and not stop.is_set():
        image = frames.get(0.2)
        if image is None:
            continue
        try:
            t0 = time.perf_counter()
            cur = current.infer(image)
            t1 = time.perf_counter()
        except EdgewatchError:
            continue
        try:
            new = candidate.infer(image)
            t2 = time.perf_counter()
        except EdgewatchError as exc:
            raise Rejection(f"shadow: {exc}") from exc
        if new.nonfinite:
            raise Rejection("shadow: non-finite outputs (NaN or Inf) on a sampled frame")
        if cur.nonfinite:
            continue
        tally.add(cur.output, new.output, (t1 - t0) * 1e3, (t2 - t1) * 1e3)
        if progress is not None:
            progress(tally)
    if tally.frames < cfg.min_shadow_frames:
        raise Rejection(f"shadow: only {tally.frames} frames compared in "
                        f"{cfg.shadow_seconds:g} s (update.min_shadow_frames "
                        f"{cfg.min_shadow_frames})")
    return tally
