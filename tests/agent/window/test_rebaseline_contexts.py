"""Re-baselining and context references on the real SSD model and vtest footage."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import cv2
import msgspec
import numpy as np
import pytest

from edgewatch.agent.app import build_agent
from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery.sinks import ListSink
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.profiling import build_reference
from edgewatch.agent.source import open_source
from edgewatch.agent.window.contexts import ReferenceSet
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.agent.window.versions import ReferencePush, ReferenceVersions
from edgewatch.collector.rebaseline import push_arguments, rebaseline, reference_bytes
from edgewatch.config.agent import AgentConfig, ContextConfig
from edgewatch.contracts.command import CommandResult
from support.footage import darkened, degraded_frames


def _cfg(cfg: AgentConfig, **reference: object) -> AgentConfig:
    return dataclasses.replace(
        cfg, window=dataclasses.replace(cfg.window, seconds=10.0, frames=0),
        reference=dataclasses.replace(cfg.reference, **reference))


def _replay(cfg: AgentConfig, engine: InferenceEngine, reference: ReferenceProfile,
            folder: Path, first: int, last: int, push: ReferencePush | None = None
            ) -> tuple[list[WindowSummary], object]:
    sink = ListSink()
    agent = build_agent(cfg, reference, publish=False, live=False, engine=engine, sink=sink)
    agent.run(open_source(str(folder), fps=10.0, start_time=first / 10.0, first=first,
                          last=last))
    agent.close()
    return list(sink.summaries), agent


def _severity(s: WindowSummary) -> str:
    return str(s.extra["drift"]["severity"])


def _push(router: CommandRouter, raw: bytes, **kw: str) -> CommandResult:
    body = {"schema": "edgewatch.cmd/1", "id": uuid.uuid4().hex, **push_arguments(raw, **kw)}
    return router("reference.push", json.dumps(body).encode())


def test_accepted_windows_rebaseline_the_device(ssd_config: AgentConfig,
                                                 ssd_engine: InferenceEngine,
                                                 ssd_reference: ReferenceProfile, vtest: Path,
                                                 tmp_path: Path) -> None:
    dark = degraded_frames(vtest, tmp_path / "dark", darkened(0.45))
    cfg = _cfg(ssd_config, versions_dir=str(tmp_path / "refs"))
    before, _ = _replay(cfg, ssd_engine, ssd_reference, dark, 0, 199)
    assert before and all(s.reference_id == ssd_reference.id for s in before)
    assert any(_severity(s) == "drift" for s in before), [_severity(s) for s in before]

    # the collector's side: the stored (wire) summaries, merged exactly onto the reference
    wires = [s.to_wire() for s in before]
    base = ssd_reference.to_contract("cam-1")
    new = rebaseline(base, wires, created=1.0e9, source="accepted dark windows")
    for name, ref in new.numeric.items():
        expected = np.sum([w.features[name].counts for w in wires if name in w.features],
                          axis=0)
        assert ref.hist.counts == expected.tolist(), name
        assert ref.hist.edges == base.numeric[name].hist.edges
        assert ref.lag1_autocorr == base.numeric[name].lag1_autocorr
    assert new.frames == sum(s.frames.monitored for s in before)

    # the device's side: reference.push through the command router
    router = CommandRouter()
    sink = ListSink()
    agent = build_agent(cfg, ssd_reference, publish=False, live=False, engine=ssd_engine,
                        sink=sink)
    refs = agent.monitor.windows
    assert isinstance(refs, ReferenceSet)
    versions = ReferenceVersions(tmp_path / "refs")
    ReferencePush(versions, refs).register(router)
    result = _push(router, reference_bytes(new), by="alice", note="gain lowered on purpose")
    assert result.ok, result.error
    assert result.previous_reference_id == ssd_reference.id
    assert result.accepted_by == "alice gain lowered on purpose"
    new_id = result.reference_id
    assert new_id and new_id != ssd_reference.id
    assert (tmp_path / "refs" / f"{new_id}.json").exists()
    assert versions.active_id() == new_id
    assert versions.history()[-1]["previous"] == ssd_reference.id

    agent.run(open_source(str(dark), fps=10.0, start_time=20.0, first=200, last=397))
    agent.close()
    after = list(sink.summaries)
    assert after and all(s.reference_id == new_id for s in after)
    assert all(_severity(s) == "ok" for s in after), [s.extra["drift"] for s in after]

    # an agent started later uses the active reference from versions_dir
    from edgewatch.agent.profiling import load_reference
    assert load_reference(cfg, ssd_engine).id == new_id


def test_push_of_an_offline_reference_keeps_the_previous(ssd_config: AgentConfig,
                                                         ssd_reference: ReferenceProfile,
                                                         tmp_path: Path) -> None:
    cfg = _cfg(ssd_config, versions_dir=str(tmp_path / "refs"))
    agent = build_agent(cfg, ssd_reference, publish=False, live=False, sink=ListSink())
    refs = agent.monitor.windows
    assert isinstance(refs, ReferenceSet)
    router = CommandRouter()
    versions = ReferenceVersions(tmp_path / "refs")
    ReferencePush(versions, refs).register(router)
    raw = json.dumps(ssd_reference.to_dict()).encode()
    first = _push(router, raw, by="bob")
    assert first.ok and first.reference_id == ssd_reference.id
    other = dataclasses.replace(ssd_reference, source="offline build", created=2.0e9)
    second = _push(router, json.dumps(other.to_dict()).encode(), by="bob")
    assert second.ok and second.reference_id == other.id
    assert second.previous_reference_id == ssd_reference.id
    assert (tmp_path / "refs" / f"{ssd_reference.id}.json").exists()
    assert versions.active_id() == other.id
    damaged = {"schema": "edgewatch.cmd/1", "id": "c9",
               **push_arguments(raw), "sha256": "0" * 64}
    bad = router("reference.push", json.dumps(damaged).encode())
    assert not bad.ok and "sha256" in (bad.error or "")
    agent.close()
    assert msgspec.json.decode(msgspec.json.encode(second), type=CommandResult) == second


def _night(frame: np.ndarray, _index: int) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    grey = cv2.convertScaleAbs(grey, alpha=1.4, beta=35)
    return cv2.merge([grey, grey, grey])


@pytest.fixture
def night(vtest: Path, tmp_path: Path) -> Path:
    return degraded_frames(vtest, tmp_path / "night", _night)


def test_ir_switch_with_a_night_reference_is_not_drift(ssd_config: AgentConfig,
                                                       ssd_engine: InferenceEngine,
                                                       ssd_reference: ReferenceProfile,
                                                       night: Path, tmp_path: Path) -> None:
    cfg = _cfg(ssd_config)
    night_ref = build_reference(cfg, ssd_engine,
                                open_source(str(night), fps=10.0, start_time=0.0, first=0,
                                            last=199), show_progress=False)
    night_path = tmp_path / "night.json"
    night_ref.save(night_path)

    plain, _ = _replay(cfg, ssd_engine, ssd_reference, night, 200, 397)
    assert any(_severity(s) == "drift" for s in plain)
    assert any(s.quality.get("greyscale_switch") for s in plain)

    ctx = _cfg(ssd_config, contexts=[ContextConfig("night", str(night_path), greyscale=True)])
    judged, _ = _replay(ctx, ssd_engine, ssd_reference, night, 200, 397)
    assert judged
    for s in judged:
        assert s.extra["context"] == "night"
        assert s.reference_id == night_ref.id
        assert not s.quality.get("greyscale_switch"), s.quality
        assert _severity(s) != "drift", s.extra["drift"]["reasons"]
        assert s.to_wire().context == "night"
