"""A reference profile's id (edgewatch.agent.window.reference.ReferenceProfile.id) names its
content: built twice from the same frames, model and settings it is the same id; other frames
give another."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.profiling import build_reference
from edgewatch.agent.source import open_source
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import AgentConfig


def _build(cfg: AgentConfig, engine: InferenceEngine, vtest: Path,
           last: int) -> ReferenceProfile:
    source = open_source(str(vtest), start_time=0.0, first=0, last=last)
    return build_reference(cfg, engine, source, show_progress=False)


def test_the_same_frames_built_twice_get_the_same_id(
        ssd_config: AgentConfig, ssd_engine: InferenceEngine, vtest: Path,
        tmp_path: Path) -> None:
    first = _build(ssd_config, ssd_engine, vtest, 39)
    second = _build(ssd_config, ssd_engine, vtest, 39)
    assert first.created != second.created  # built at two different times
    assert second.id == first.id
    first.save(tmp_path / "first.json")  # and the id survives a round trip through the file
    assert ReferenceProfile.load(tmp_path / "first.json").id == first.id
    a_day_later = dataclasses.replace(first, created=first.created + 86400.0)
    assert a_day_later.id == first.id


def test_other_frames_get_another_id(ssd_config: AgentConfig, ssd_engine: InferenceEngine,
                                     vtest: Path) -> None:
    assert _build(ssd_config, ssd_engine, vtest, 39).id \
        != _build(ssd_config, ssd_engine, vtest, 49).id
