"""Shared fixtures: the real model and footage, configs and reference profiles, brokers,
PostgreSQL databases and collector stores.

Helpers (paths, brokers, stand-ins) are in the ``support`` package next to this file. This
directory is on ``sys.path`` (pytest's default ``prepend`` import mode puts the directory of
this ``conftest.py`` there), so tests import them as ``support.<module>``; so do the
benchmarks, which put this directory on ``sys.path`` themselves. No test imports another
test module or this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.profiling import build_reference
from edgewatch.agent.source import open_source
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import AgentConfig, parse_config
from support import postgres
from support.broker import MosquittoBroker, mosquitto_binary
from support.paths import assets_dir, ssd_config_dict


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
        pytest.skip("mosquitto is not installed (scripts/setup-test-tools.sh, run by make "
                    "test, unpacks it)")


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


@pytest.fixture(scope="session")
def pg_admin() -> str:
    """The URL of a PostgreSQL database to create test databases from, or skip."""
    reason = postgres.unreachable(postgres.PG_URL)
    if reason is not None:
        pytest.skip(reason)
    return postgres.PG_URL


@pytest.fixture
def pg_url(pg_admin: str) -> Iterator[str]:
    """A fresh, empty database on the test server; dropped after the test."""
    with postgres.scratch_database(pg_admin) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A collector store URL, once per backend: a new SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collector.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
