"""Shared fixtures: the real model and footage, configs and reference profiles."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgewatch.agent import build_reference
from edgewatch.config import AgentConfig, parse_config
from edgewatch.inference import InferenceEngine
from edgewatch.reference import ReferenceProfile
from edgewatch.sources import open_source

REPO = Path(__file__).resolve().parents[1]


def assets_dir() -> Path | None:
    env = os.environ.get("EDGEWATCH_ASSETS")
    candidates = [Path(env)] if env else []
    candidates += [REPO / "assets", REPO.parent / "shared" / "assets"]
    for c in candidates:
        if (c / "video" / "vtest.avi").is_file() and (
            c / "models" / "ssdlite_mobilenet_v2_coco.onnx"
        ).is_file():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def assets() -> Path:
    found = assets_dir()
    if found is None:
        pytest.skip("assets not found: run scripts/fetch-assets.sh or set EDGEWATCH_ASSETS")
    return found


@pytest.fixture(scope="session")
def vtest(assets: Path) -> Path:
    return assets / "video" / "vtest.avi"


@pytest.fixture(scope="session")
def vtest_frames(vtest: Path) -> list[np.ndarray]:
    """The first 120 frames of vtest.avi, decoded once."""
    cap = cv2.VideoCapture(str(vtest))
    frames = []
    for _ in range(120):
        ok, f = cap.read()
        assert ok
        frames.append(f)
    cap.release()
    return frames


def ssd_config_dict(assets: Path, **overrides: dict) -> dict:
    base: dict = {
        "device": {"id": "test-cam"},
        "model": {
            "path": str(assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"),
            "labels": str(assets / "models" / "coco_labels.txt"),
        },
        "window": {"seconds": 10.0},
        "resources": {"enabled": False},
    }
    for key, value in overrides.items():
        base.setdefault(key, {}).update(value)
    return base


@pytest.fixture(scope="session")
def ssd_config(assets: Path) -> AgentConfig:
    return parse_config(ssd_config_dict(assets))


@pytest.fixture(scope="session")
def ssd_engine(ssd_config: AgentConfig) -> InferenceEngine:
    return InferenceEngine(ssd_config.model)


@pytest.fixture(scope="session")
def ssd_reference(ssd_config: AgentConfig, ssd_engine: InferenceEngine,
                  vtest: Path) -> ReferenceProfile:
    """Reference from vtest frames 0-199 (enough for the pipeline tests)."""
    source = open_source(str(vtest), start_time=0.0, first=0, last=199)
    return build_reference(ssd_config, ssd_engine, source, show_progress=False)


@pytest.fixture(scope="session")
def vtest_all_frames(vtest: Path) -> list[np.ndarray]:
    """Every frame of vtest.avi (795), decoded once."""
    cap = cv2.VideoCapture(str(vtest))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames
