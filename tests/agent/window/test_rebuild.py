"""``reference.rebuild`` on the real SSD model and vtest footage: the device profiles its
next measured frames into a whole new reference (anomaly model included) and switches."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from edgewatch.agent.app import Agent, build_agent
from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery.sinks import ListSink
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.source import open_source
from edgewatch.agent.window.contexts import ReferenceSet
from edgewatch.agent.window.monitor_parts import FrameObservers
from edgewatch.agent.window.rebuild import ReferenceRebuild
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.versions import ReferencePush, ReferenceVersions
from edgewatch.collector.rebaseline import push_arguments
from edgewatch.config.agent import AgentConfig
from edgewatch.contracts.command import CommandResult
from support.footage import darkened, degraded_frames


@pytest.fixture
def dark(vtest: Path, tmp_path: Path) -> Path:
    return degraded_frames(vtest, tmp_path / "dark", darkened(0.45))


def _device(ssd_config: AgentConfig, engine: InferenceEngine | None,
            reference: ReferenceProfile, tmp_path: Path
            ) -> tuple[Agent, ListSink, CommandRouter, ReferenceRebuild, ReferenceVersions]:
    """An agent with 10-s windows, its versions directory, and the two reference commands
    on a router, wired as ``build_agent`` wires them for a device that publishes."""
    cfg = dataclasses.replace(
        ssd_config, window=dataclasses.replace(ssd_config.window, seconds=10.0, frames=0),
        reference=dataclasses.replace(ssd_config.reference,
                                      versions_dir=str(tmp_path / "refs")))
    sink = ListSink()
    agent = build_agent(cfg, reference, publish=False, live=False, engine=engine, sink=sink)
    refs = agent.monitor.windows
    assert isinstance(refs, ReferenceSet)
    versions = ReferenceVersions(tmp_path / "refs")
    router = CommandRouter()
    ReferencePush(versions, refs).register(router)
    rebuild = ReferenceRebuild(cfg, versions, refs)
    rebuild.register(router)
    agent.monitor.observer = FrameObservers(agent.monitor.observer, rebuild)
    return agent, sink, router, rebuild, versions


def _send(router: CommandRouter, name: str, **args: Any) -> CommandResult:
    body = {"schema": "edgewatch.cmd/1", "id": uuid.uuid4().hex, **args}
    return router(name, json.dumps(body).encode())


def test_a_rebuild_profiles_the_next_frames_and_switches(
        ssd_config: AgentConfig, ssd_engine: InferenceEngine,
        ssd_reference: ReferenceProfile, dark: Path, tmp_path: Path) -> None:
    agent, sink, router, rebuild, versions = _device(ssd_config, ssd_engine, ssd_reference,
                                                     tmp_path)
    started = _send(router, "reference.rebuild", frames=40, by="alice", note="new lamp")
    assert started.ok, started.error
    assert (started.rebuild_frames, started.context) == (40, "default")
    again = _send(router, "reference.rebuild", frames=40)
    assert not again.ok and "in progress: 0 of 40 frames" in (again.error or "")

    # 10 fps footage, 2.5 frames a second measured: 40 frames are profiled by frame ~160,
    # and the new reference judges the windows that open after that
    agent.run(open_source(str(dark), fps=10.0, start_time=0.0, first=0, last=397))
    agent.close()

    assert rebuild.progress is None
    [answer] = rebuild.switched
    new_id = answer["reference_id"]
    assert answer["previous_reference_id"] == ssd_reference.id
    assert versions.active_id() == new_id != ssd_reference.id
    new = versions.load(new_id)
    assert new.frames == 40 and new.source.startswith("rebuilt on the device from 40 frames")
    assert new.anomaly is not None  # what accepting stored windows cannot give
    assert (new.model_sha256, new.adapter) == (ssd_reference.model_sha256,
                                               ssd_reference.adapter)
    assert new.frame_interval == pytest.approx(0.4, rel=0.05)  # the measured frames' interval
    assert versions.history()[-1]["by"] == "alice new lamp"

    windows = list(sink.summaries)
    old = [s for s in windows if s.reference_id == ssd_reference.id]
    after = [s for s in windows if s.reference_id == new_id]
    assert old and after and windows == old + after
    assert any(s.extra["drift"]["severity"] == "drift" for s in old)
    assert all(s.extra["drift"]["severity"] != "drift" for s in after), \
        [s.extra["drift"] for s in after]
    # the frames of the new reference's windows are scored by its own anomaly model
    assert all(s.anomaly.threshold == new.anomaly.threshold and s.anomaly.scored
               for s in after)


def test_a_rebuild_is_refused_cancelled_or_dropped_as_the_operator_decides(
        ssd_config: AgentConfig, ssd_engine: InferenceEngine,
        ssd_reference: ReferenceProfile, dark: Path, tmp_path: Path) -> None:
    agent, _, router, rebuild, versions = _device(ssd_config, ssd_engine, ssd_reference,
                                                  tmp_path)
    for args, why in (({"frames": 5}, "'frames' must be a whole number from 20"),
                      ({"frames": 5001}, "to 5000"),
                      ({"frames": "40"}, "'frames' must be"),
                      ({"frames": 40, "context": "night"}, "unknown reference context")):
        refused = _send(router, "reference.rebuild", **args)
        assert not refused.ok and why in (refused.error or ""), (args, refused.error)
    nothing = _send(router, "reference.rebuild", cancel=True)
    assert not nothing.ok and "no reference rebuild is in progress" in (nothing.error or "")

    assert _send(router, "reference.rebuild", frames=20).ok
    cancelled = _send(router, "reference.rebuild", cancel=True)
    assert cancelled.ok and cancelled.rebuild_frames == 0
    assert rebuild.progress is None

    # a reference pushed while a rebuild runs stands: the rebuild is dropped
    assert _send(router, "reference.rebuild", frames=20).ok
    pushed = dataclasses.replace(ssd_reference, source="offline build", created=2.0e9)
    answer = _send(router, "reference.push", **push_arguments(
        json.dumps(pushed.to_dict()).encode(), by="bob"))
    assert answer.ok and answer.reference_id == pushed.id
    agent.run(open_source(str(dark), fps=10.0, start_time=0.0, first=0, last=120))
    agent.close()
    assert rebuild.progress is None and rebuild.switched == []
    assert versions.active_id() == pushed.id
    assert [h["id"] for h in versions.history()] == [pushed.id]
