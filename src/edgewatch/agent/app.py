"""Assembling the pipeline from a configuration: source -> inference -> monitor -> sink."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.measure.checks import FrameChecks
from edgewatch.agent.measure.frame import FrameMeasurer
from edgewatch.agent.measure.image import ImageFeatureExtractor
from edgewatch.agent.measure.outputs import OutputFeatureExtractor, load_labels
from edgewatch.agent.progress import Progress
from edgewatch.agent.records import Frame, Image
from edgewatch.agent.source import FrameSource
from edgewatch.agent.window.drift_judge import DriftJudge
from edgewatch.agent.window.monitor import Monitor, Sink
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile
from edgewatch.agent.window.resources import ResourceSampler
from edgewatch.clock import Clock, SystemClock
from edgewatch.config.agent import AgentConfig
from edgewatch.errors import ConfigError, ModelError

log = logging.getLogger(__name__)
R = TypeVar("R")


def device_id(cfg: AgentConfig) -> str:
    return cfg.device.id or socket.gethostname()


def make_measurer(cfg: AgentConfig) -> FrameMeasurer:
    try:
        labels = load_labels(cfg.model.labels, cfg.model.labels_offset)
    except OSError as exc:
        raise ConfigError(f"model.labels: cannot read {cfg.model.labels} ({exc.strerror})") from exc
    post = cfg.model.postprocess
    return FrameMeasurer(
        ImageFeatureExtractor(cfg.features.analysis_width),
        OutputFeatureExtractor(post.score_threshold, post.near_band, labels=labels),
    )


def load_reference(cfg: AgentConfig, engine: InferenceEngine,
                   path: str | None = None) -> ReferenceProfile:
    profile = ReferenceProfile.load(path if path is not None else cfg.reference.path)
    profile.check_compatible(engine.model_sha256, cfg.model.adapter, cfg.features.analysis_width)
    return profile


def infer_safely(infer: Callable[[Image], R], image: Image | None) -> tuple[R | None, bool]:
    """``infer(image)``, and whether it failed: an onnxruntime failure on one frame is
    logged and counted, not raised. No image (a decode failure): (None, False)."""
    if image is None:
        return None, False
    try:
        return infer(image), False
    except ModelError as exc:
        log.warning("%s", exc)
        return None, True


def build_reference(cfg: AgentConfig, engine: InferenceEngine, source: FrameSource,
                    total: int | None = None, show_progress: bool = True) -> ReferenceProfile:
    """Measure every frame of a recorded source (nothing skipped) into a reference profile."""
    measurer = make_measurer(cfg)
    builder = ReferenceBuilder(cfg.reference.bins)
    progress = Progress(total, "profiling", force=False) if show_progress else None
    stop = threading.Event()
    for frame in source.frames(stop):
        result, _ = infer_safely(engine.infer, frame.image)
        if frame.image is not None:
            builder.add(measurer(frame, result))
        if progress:
            progress.update()
    if progress:
        progress.close()
    return builder.build(
        model_sha256=engine.model_sha256, model_name=engine.model_name,
        adapter=cfg.model.adapter, analysis_width=cfg.features.analysis_width,
        source=Path(source.description).name,
    )


def make_monitor(cfg: AgentConfig, reference: ReferenceProfile, sink: Sink, *, live: bool,
                 lossless: bool = False, clock: Clock | None = None) -> Monitor:
    """A Monitor with the configured windows, quality checks, anomaly score and drift judge."""
    resources = ResourceSampler(cfg.resources.disk_path) if cfg.resources.enabled else None
    return Monitor(
        reference, make_measurer(cfg), sink,
        window_seconds=cfg.window.seconds, window_frames=cfg.window.frames,
        queue_size=cfg.features.queue_size, every_nth=cfg.features.every_nth,
        max_fps=cfg.features.max_fps,
        live=live, lossless=lossless, clock=clock or SystemClock(), resources=resources,
        decorate=DriftJudge(cfg.drift, reference), checks=FrameChecks(cfg.quality, reference),
    )


class Agent:
    """The monitored inference loop over one source."""

    def __init__(self, cfg: AgentConfig, engine: InferenceEngine, reference: ReferenceProfile,
                 sink: Sink, *, live: bool, lossless: bool = False,
                 clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.stop = threading.Event()
        self.monitor = make_monitor(cfg, reference, sink, live=live, lossless=lossless,
                                    clock=clock or SystemClock())

    def process(self, frame: Frame) -> None:
        """One frame: inference, then the monitor (outputs decoded only if it is sampled)."""
        result, failed = infer_safely(self.engine.infer_deferred, frame.image)
        self.monitor.observe(frame, result, inference_error=failed)

    def run(self, source: FrameSource, progress: Progress | None = None) -> int:
        """Process frames until the source ends or stop is set; returns frames seen."""
        seen = 0
        try:
            for frame in source.frames(self.stop):
                self.process(frame)
                seen += 1
                if progress:
                    progress.update()
        finally:
            self.monitor.close()
            if progress:
                progress.close()
        return seen
