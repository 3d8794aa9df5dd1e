"""A model's reference profile on the device: built from a recorded source (``edgewatch
profile build``), loaded for a run (the pushed or accepted version first)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from edgewatch.agent.app import make_measurer
from edgewatch.agent.inference.failures import infer_safely
from edgewatch.agent.progress import Progress
from edgewatch.agent.source import FrameSource
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile

if TYPE_CHECKING:
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.config.agent import AgentConfig


def load_reference(cfg: AgentConfig, engine: InferenceEngine,
                   path: str | None = None) -> ReferenceProfile:
    """The default reference: ``path``, else the active one of ``reference.versions_dir``
    (accepted or pushed), else ``reference.path``."""
    active = None
    if path is None and cfg.reference.versions_dir:
        from edgewatch.agent.window.versions import ReferenceVersions

        active = ReferenceVersions(cfg.reference.versions_dir).active()
    profile = active or ReferenceProfile.load(path if path is not None else cfg.reference.path)
    profile.check_compatible(engine.model_sha256, cfg.model.adapter, cfg.features.analysis_width)
    return profile


def build_reference(cfg: AgentConfig, engine: InferenceEngine, source: FrameSource,
                    total: int | None = None, show_progress: bool = True) -> ReferenceProfile:
    """Measure every frame of a recorded source (nothing skipped) into a reference profile.

    Only usable frames are measured: decoded, inferred and with finite outputs. Raises
    ProfileError when fewer than ``reference.min_frames`` are; the profile's ``unusable``
    counts the others by cause, its ``excluded`` the features it could not learn."""
    from edgewatch.errors import ProfileError

    measurer = make_measurer(cfg)
    builder = ReferenceBuilder(cfg.reference.bins)
    progress = Progress(total, "profiling", force=False) if show_progress else None
    stop = threading.Event()
    seen = 0
    unusable = {"undecodable": 0, "inference failed": 0, "NaN or infinite outputs": 0}
    for frame in source.frames(stop):
        seen += 1
        result, failed = infer_safely(engine.infer, frame.image)
        if frame.image is None:
            unusable["undecodable"] += 1
        elif failed or result is None:
            unusable["inference failed"] += 1
        elif result.nonfinite:
            unusable["NaN or infinite outputs"] += 1
        else:
            builder.add(measurer(frame, result))
        if progress:
            progress.update()
    if progress:
        progress.close()
    name = Path(source.description).name
    unusable = {cause: n for cause, n in unusable.items() if n}
    if builder.frames < cfg.reference.min_frames:
        causes = ", ".join(f"{n} {cause}" for cause, n in unusable.items())
        raise ProfileError(
            f"{name}: only {builder.frames} of {seen} frames usable for a reference (at "
            f"least {cfg.reference.min_frames}, reference.min_frames)"
            + (f": {causes}" if causes else ""))
    profile = builder.build(
        model_sha256=engine.model_sha256, model_name=engine.model_name,
        adapter=cfg.model.adapter, analysis_width=cfg.features.analysis_width,
        source=name, min_samples=cfg.drift.min_reference_samples,
    )
    profile.unusable = unusable
    return profile
