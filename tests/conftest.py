"""Shared fixtures: the real model and footage, configs and reference profiles."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from broker import MosquittoBroker, mosquitto_binary
from edgewatch.agent.app import build_reference
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.source import open_source
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import AgentConfig, parse_config

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


def _need_mosquitto() -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (scripts/setup-venv.sh installs it)")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A started, anonymous mosquitto on a free 127.0.0.1 port; stopped after the test."""
    _need_mosquitto()
    with MosquittoBroker(workdir=tmp_path / "mosquitto") as b:
        yield b


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """``broker_factory(**MosquittoBroker options)`` -> an UNSTARTED broker (call .start());
    every broker made is stopped after the test."""
    _need_mosquitto()
    made: list[MosquittoBroker] = []

    def make(**kwargs: object) -> MosquittoBroker:
        kwargs.setdefault("workdir", tmp_path / f"mosquitto-{len(made)}")
        b = MosquittoBroker(**kwargs)  # type: ignore[arg-type]
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()
