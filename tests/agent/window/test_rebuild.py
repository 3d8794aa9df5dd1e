"""``reference.rebuild`` on the real SSD model and vtest footage: the device profiles its
next measured frames into a whole new reference (anomaly model included) and switches."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewatch.agent.app import Agent, build_agent
from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery.sinks import ListSink
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.records import Frame, InferenceResult, RawOutputs, Timings
from edgewatch.agent.source import open_source
from edgewatch.agent.window import rebuild as rebuild_module
from edgewatch.agent.window.contexts import ContextRule, ReferenceSet
from edgewatch.agent.window.monitor_parts import FrameObservers
from edgewatch.agent.window.rebuild import ReferenceRebuild
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile
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
    status = _send(router, "reference.rebuild", status=True)
    assert status.ok and (status.rebuild_frames, status.rebuild_profiled) == (40, 0)

    # 10 fps footage, 2.5 frames a second measured: 40 frames are profiled by frame ~160,
    # and the new reference judges the windows that open after that
    agent.run(open_source(str(dark), fps=10.0, start_time=0.0, first=0, last=397))
    agent.close()

    assert rebuild.progress is None
    [switch] = versions.history()
    new_id = switch["id"]
    assert switch["previous"] == ssd_reference.id
    assert versions.active_id() == new_id != ssd_reference.id
    new = versions.load(new_id)
    assert new.frames == 40 and new.source.startswith("rebuilt on the device from 40 frames")
    assert new.anomaly is not None  # what accepting stored windows cannot give
    assert (new.model_sha256, new.adapter) == (ssd_reference.model_sha256,
                                               ssd_reference.adapter)
    assert new.frame_interval == pytest.approx(0.4, rel=0.05)  # the measured frames' interval
    assert versions.history()[-1]["by"] == "alice new lamp"
    status = _send(router, "reference.rebuild", status=True)
    assert status.ok and status.rebuild_frames is None
    assert (status.rebuild_outcome or "").startswith(
        f"switched context 'default' to {new_id} (previous {ssd_reference.id}) after 40")

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
        ssd_reference: ReferenceProfile, dark: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
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

    bad = _send(router, "reference.rebuild", cancel="true")
    assert not bad.ok and "'cancel' must be true or false" in (bad.error or "")

    # a reference pushed while the rebuild builds its profile stands: the rebuild is dropped
    assert _send(router, "reference.rebuild", frames=20).ok
    pushed = dataclasses.replace(ssd_reference, source="offline build", created=2.0e9)
    build = ReferenceBuilder.build
    answers: list[CommandResult] = []

    def build_then_push(builder: ReferenceBuilder, **kw: Any) -> ReferenceProfile:
        profile = build(builder, **kw)
        answers.append(_send(router, "reference.push", **push_arguments(
            json.dumps(pushed.to_dict()).encode(), by="bob")))
        return profile

    monkeypatch.setattr(ReferenceBuilder, "build", build_then_push)
    agent.run(open_source(str(dark), fps=10.0, start_time=0.0, first=0, last=120))
    agent.close()
    assert [a.reference_id for a in answers] == [pushed.id]
    assert rebuild.progress is None
    assert rebuild.outcome.startswith("dropped: the reference of context 'default' changed")
    assert versions.active_id() == pushed.id
    assert [h["id"] for h in versions.history()] == [pushed.id]


def _measurement(i: int, context: str = "", **kw: Any) -> FrameMeasurement:
    kw.setdefault("thumbnail", np.zeros((24, 32), np.float32))
    return FrameMeasurement(i, i * 0.4, {"brightness": 100.0 + i % 7, "contrast": 20.0 + i % 3},
                            {}, None, 1.0, context=context, **kw)


def test_only_usable_frames_of_the_context_are_profiled_and_a_failure_leaves_the_reference(
        ssd_config: AgentConfig, ssd_reference: ReferenceProfile, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    refs = ReferenceSet(ssd_config.quality, ssd_config.drift, ssd_reference,
                        [(ContextRule("night", greyscale=True), ssd_reference)])
    versions = ReferenceVersions(tmp_path / "refs")
    rebuild = ReferenceRebuild(ssd_config, versions, refs)
    router = CommandRouter()
    rebuild.register(router)
    assert _send(router, "reference.rebuild", frames=20, context="night").ok
    result = InferenceResult(RawOutputs({}), Timings())
    frames = [
        (_measurement(0, "night"), result),
        (_measurement(1, "default"), result),  # another context: not seen
        (_measurement(2, ""), result),  # no context: the default one
        (_measurement(3, "night", nonfinite=True), result),
        (_measurement(4, "night", inference_error=True), None),
        (_measurement(5, "night", decode_error=True, thumbnail=None), None),
        (_measurement(6, "night"), None),
    ]
    window = (0.0, 10.0)
    for m, r in frames:
        rebuild.observe(Frame(m.index, m.timestamp, None), r, m, window)
    run = rebuild._run
    assert run is not None and (run.builder.frames, run.skipped) == (1, 4)

    def full_disk(*_a: Any, **_k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ReferenceVersions, "install", full_disk)
    for i in range(7, 26):
        m = _measurement(i, "night")
        rebuild.observe(Frame(i, m.timestamp, None), result, m, window)
    assert rebuild.progress is None and versions.history() == []
    assert rebuild.outcome == ("failed for context 'night': OSError: [Errno 28] No space "
                               "left on device")
    assert refs.profile("night").id == ssd_reference.id and versions.active_id("night") is None
    status = _send(router, "reference.rebuild", status=True)
    assert status.ok and status.rebuild_outcome == rebuild.outcome


def test_a_rebuild_and_its_outcome_survive_a_restart_of_the_agent(
        ssd_config: AgentConfig, ssd_reference: ReferenceProfile, tmp_path: Path) -> None:
    def device() -> tuple[ReferenceSet, ReferenceRebuild, CommandRouter]:
        """The agent as it starts: references as configured, the active ones installed."""
        night = versions.active("night") or ssd_reference
        refs = ReferenceSet(ssd_config.quality, ssd_config.drift, ssd_reference,
                            [(ContextRule("night", greyscale=True), night)])
        rebuild = ReferenceRebuild(ssd_config, versions, refs)
        router = CommandRouter()
        rebuild.register(router)
        return refs, rebuild, router

    def feed(rebuild: ReferenceRebuild, first: int, count: int) -> None:
        result = InferenceResult(RawOutputs({}), Timings())
        for i in range(first, first + count):
            m = _measurement(i, "night")
            rebuild.observe(Frame(i, m.timestamp, None), result, m, (0.0, 10.0))

    versions = ReferenceVersions(tmp_path / "refs")
    _, rebuild, router = device()
    assert _send(router, "reference.rebuild", frames=25, context="night", by="carol").ok
    feed(rebuild, 0, 10)
    assert rebuild.progress == ("night", 10, 25)

    # restarted (a power cut): the rebuild goes on, its frames counted from the first again
    _, rebuild, router = device()
    assert rebuild.progress == ("night", 0, 25)
    status = _send(router, "reference.rebuild", status=True)
    assert (status.context, status.rebuild_frames, status.rebuild_profiled) == ("night", 25, 0)
    feed(rebuild, 10, 24)
    assert rebuild.progress == ("night", 24, 25)
    feed(rebuild, 34, 1)
    assert rebuild.progress is None
    [switched] = versions.history()
    assert (switched["context"], switched["by"]) == ("night", "carol")
    assert versions.active_id("night") == switched["id"] != ssd_reference.id
    assert versions.load(switched["id"]).frames == 25

    # restarted again: nothing in progress, and the last outcome is still told
    refs, rebuild, router = device()
    assert refs.profile("night").id == switched["id"]
    status = _send(router, "reference.rebuild", status=True)
    assert rebuild.progress is None and status.rebuild_frames is None
    assert (status.rebuild_outcome or "").startswith(
        f"switched context 'night' to {switched['id']} (previous {ssd_reference.id})")

    # a cancel is kept as well
    assert _send(router, "reference.rebuild", frames=20, context="night").ok
    assert _send(router, "reference.rebuild", cancel=True).ok
    _, rebuild, router = device()
    assert rebuild.progress is None
    assert rebuild.outcome == "cancelled after 0 of 20 frames of context 'night'"

    # a rebuild of a context the new configuration no longer has is not resumed, and told
    assert _send(router, "reference.rebuild", frames=20, context="night").ok
    plain = ReferenceSet(ssd_config.quality, ssd_config.drift, ssd_reference, [])
    rebuild = ReferenceRebuild(ssd_config, versions, plain)
    assert rebuild.progress is None
    assert rebuild.outcome.startswith("not resumed after a restart: context 'night' with 20")
    assert ReferenceRebuild(ssd_config, versions, plain).outcome == rebuild.outcome
    # nor one whose frames the configuration no longer allows (min_frames raised)
    _, _, router = device()
    assert _send(router, "reference.rebuild", frames=20, context="night").ok
    stricter = dataclasses.replace(ssd_config, reference=dataclasses.replace(
        ssd_config.reference, min_frames=30))
    assert ReferenceRebuild(stricter, versions, refs).progress is None

    # the agent died after the switch, before the state said so: the switch stands and is
    # not done again on frames profiled anew
    _, rebuild, router = device()
    assert _send(router, "reference.rebuild", frames=20, context="night").ok
    state = (tmp_path / "refs" / "rebuild.json").read_bytes()
    feed(rebuild, 0, 20)
    second = versions.active_id("night")
    assert second != switched["id"]
    (tmp_path / "refs" / "rebuild.json").write_bytes(state)
    _, rebuild, _ = device()
    assert rebuild.progress is None and versions.active_id("night") == second
    assert rebuild.outcome.startswith(
        f"not resumed after a restart: the reference of context 'night' is {second}, not "
        f"the {switched['id']} it started from")


def test_a_rebuilds_state_that_cannot_be_kept_or_read_never_stops_the_agent(
        ssd_config: AgentConfig, ssd_reference: ReferenceProfile, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    versions = ReferenceVersions(tmp_path / "refs")
    refs = ReferenceSet(ssd_config.quality, ssd_config.drift, ssd_reference, [])
    router = CommandRouter()
    ReferenceRebuild(ssd_config, versions, refs).register(router)
    assert _send(router, "reference.rebuild", frames=20).ok

    def full_disk(*_a: Any, **_k: Any) -> None:
        raise OSError(28, "No space left on device")

    # a cancel that cannot be written removes the state: the cancelled rebuild stays dead
    monkeypatch.setattr(rebuild_module, "atomic_write", full_disk)
    assert _send(router, "reference.rebuild", cancel=True).ok
    monkeypatch.undo()
    assert not (tmp_path / "refs" / "rebuild.json").exists()
    assert ReferenceRebuild(ssd_config, versions, refs).progress is None

    # unreadable state is ignored (logged) at start-up, however it is broken
    for broken in ("{not json", "[" * 200_000, '{"run": {"context": 7, "frames": "x"}}',
                   '{"run": ["default", 20], "outcome": {"a": 1}}', "[]"):
        (tmp_path / "refs" / "rebuild.json").write_text(broken)
        assert ReferenceRebuild(ssd_config, versions, refs).progress is None, broken
