"""Model updates in tests: a configuration with a quick lifecycle, staged updates, an agent
driven over vtest frames until its update lifecycle settles."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgewatch.agent.app import Agent
from edgewatch.agent.inference.engine import file_sha256
from edgewatch.agent.records import Frame
from edgewatch.agent.update.staged import StagedUpdate
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import AgentConfig

QUICK = {"shadow_frames": 12, "min_shadow_frames": 6, "shadow_seconds": 60.0,
         "sample_every": 2, "shadow_queue": 2, "validate_frames": 2, "soak_seconds": 1.5,
         "soak_min_frames": 10}
"""A lifecycle of a few seconds."""


def update_config(base: AgentConfig, workdir: Path, reference: Path | None = None,
                  **update: Any) -> AgentConfig:
    """``base`` with ``update.models_dir`` in ``workdir``, the QUICK settings (and
    ``update``), and ``reference`` as ``reference.path``."""
    settings = {**QUICK, **update}
    cfg = dataclasses.replace(base, update=dataclasses.replace(
        base.update, models_dir=str(workdir / "models"), **settings))
    if reference is not None:
        cfg = dataclasses.replace(cfg, reference=dataclasses.replace(cfg.reference,
                                                                     path=str(reference)))
    return cfg


def reference_for(profile: ReferenceProfile, model: Path, path: Path) -> Path:
    """``profile`` relabelled as built for ``model`` (its sha256), saved to ``path``."""
    copy = dataclasses.replace(profile, model_sha256=file_sha256(model))
    copy.save(path)
    return path


def stage(workdir: Path, model: Path, update_id: str,
          reference: Path | None = None) -> StagedUpdate:
    """``model`` (and ``reference``) copied into a staging directory, as the transfer
    stages them."""
    directory = workdir / "staging" / update_id
    directory.mkdir(parents=True, exist_ok=True)
    staged_model = directory / "model.onnx"
    shutil.copyfile(model, staged_model)
    staged_ref = None
    if reference is not None:
        staged_ref = directory / "reference.json"
        shutil.copyfile(reference, staged_ref)
    return StagedUpdate(update_id=update_id, directory=directory, model=staged_model,
                        model_sha256=file_sha256(staged_model), reference=staged_ref,
                        received=time.time())


def drive(agent: Agent, frames: Sequence[np.ndarray], until: Callable[[], bool],
          timeout: float = 120.0, pause: float = 0.005) -> int:
    """Frames (cycling through ``frames``) through ``agent.process`` until ``until()`` or
    the timeout (AssertionError); the number of frames processed."""
    deadline = time.monotonic() + timeout
    n = 0
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled after {timeout:g} s and {n} frames")
        agent.process(Frame(n, n / 25.0, frames[n % len(frames)]))
        n += 1
        if pause:
            time.sleep(pause)
    return n
