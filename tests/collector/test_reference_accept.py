"""Re-baselining through the fleet, end to end: a device (the real agent with the SSDLite
model, publishing to a real Mosquitto broker) sees footage darkened on purpose and drifts;
an operator accepts those windows with ``edgewatch reference accept``; the collector merges
them exactly into a new reference and pushes it; the device's next windows are judged
against it and are ok; ``edgewatch reference history`` records who accepted what."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewatch.agent.app import Agent, build_agent
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import Frame
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.cli import main
from edgewatch.collector.rebaseline import RebaselineError
from edgewatch.collector.reference_ops import window_range
from edgewatch.collector.service import CollectorService
from edgewatch.collector.store import open_store
from edgewatch.config.agent import AgentConfig, parse_config
from support import footage
from support.broker import MosquittoBroker
from support.evidence_fleet import device_config, running_collector, vtest_frames
from support.paths import ssd_config_dict
from support.waiting import wait_until

FPS = 10.0


@pytest.fixture(scope="module")
def reference(assets: Path, vtest: Path,
              tmp_path_factory: pytest.TempPathFactory) -> ReferenceProfile:
    work = tmp_path_factory.mktemp("accept-reference")
    footage.build_reference(footage.agent_config(assets, work), vtest, work)
    return ReferenceProfile.load(work / "reference.json")


@pytest.fixture
def collector(tmp_path: Path, broker: MosquittoBroker) -> Iterator[tuple[CollectorService, Path]]:
    with running_collector(tmp_path, broker) as running:
        yield running


def play(agent: Agent, vtest: Path, first: int, last: int) -> None:
    """Frames first..last-1 of vtest darkened to 45 %, through the running agent."""
    dark = footage.darkened(0.45)
    for i, image in vtest_frames(vtest, first, last):
        agent.process(Frame(i, footage.START + i / FPS, dark(image, i)))


def started_device(assets: Path, tmp_path: Path, broker: MosquittoBroker, device: str,
                   reference: ReferenceProfile) -> Agent:
    """The real agent (SSDLite) as ``device``, publishing to ``broker``, with a versions
    directory (re-baselining on), started."""
    base = parse_config(ssd_config_dict(assets))
    cfg: AgentConfig = device_config(base, tmp_path / device, broker, device)
    cfg = dataclasses.replace(cfg, reference=dataclasses.replace(
        cfg.reference, versions_dir=str(tmp_path / device / "references")))
    agent = build_agent(cfg, reference, publish=True, live=False,
                        engine=InferenceEngine(base.model), lossless=True)
    agent.start()
    return agent


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_accepted_windows_become_the_reference_and_the_next_windows_are_ok(
        tmp_path: Path, broker: MosquittoBroker, assets: Path, vtest: Path,
        reference: ReferenceProfile, collector: tuple[CollectorService, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    service, config = collector
    agent = started_device(assets, tmp_path, broker, "cam-1", reference)
    try:
        play(agent, vtest, 400, 700)  # three 10-s windows, judged when the next frame comes
        with open_store(service.cfg.store.url) as store:
            before = wait_until(lambda: len(store.summaries("cam-1")) >= 2 and
                                store.reference("cam-1", reference.id) is not None
                                and store.summaries("cam-1"), 30, "windows and reference")
            assert any(s.drift is not None and s.drift.severity == "drift" for s in before)

        code, out = cli(capsys, "reference", "accept", "--device", "cam-1", "--by", "alice",
                        "--note", "new lamp", "--config", str(config))
        assert code == 0, out
        assert "is now its reference" in out and f"previous {reference.id}" in out, out
        new_id = out.split("is now its reference ")[1].split()[0]

        play(agent, vtest, 700, 795)  # the next windows, still dark: the new normal
        agent.monitor.close()
        with open_store(service.cfg.store.url) as store:
            after = wait_until(lambda: [s for s in store.summaries("cam-1")
                                        if s.reference_id == new_id], 30,
                               "windows judged on the new reference")
            assert all(s.drift is not None and s.drift.severity == "ok" for s in after), \
                [s.drift for s in after]
            # published retained at the switch, not only at the device's next connection
            wait_until(lambda: store.reference("cam-1", new_id), 30,
                       "the accepted reference, published by the device")
    finally:
        agent.close()

    code, out = cli(capsys, "reference", "history", "--device", "cam-1", "--json",
                    "--config", str(config))
    assert code == 0, out
    [record] = json.loads(out)
    assert (record["by"], record["note"], record["state"], record["reference_id"],
            record["previous_reference_id"]) == ("alice", "new lamp", "answered", new_id,
                                                 reference.id)

    # a reference built offline, pushed while the device is away: queued for its return
    offline_built = tmp_path / "offline.json"
    reference.save(offline_built)
    with open_store(service.cfg.store.url) as store:
        wait_until(lambda: not store.device("cam-1").online, 15,  # type: ignore[union-attr]
                   "cam-1 offline")
    code, out = cli(capsys, "reference", "push", "--device", "cam-1", "--reference",
                    str(offline_built), "--by", "bob", "--config", str(config))
    assert code == 0 and out.startswith("queued: cam-1 is offline"), out
    code, out = cli(capsys, "reference", "history", "--device", "cam-1", "--config",
                    str(config))
    assert code == 0 and "bob" in out.splitlines()[1] and "queued" in out.splitlines()[1], out


def test_a_device_rebuilds_its_reference_from_its_next_frames(
        tmp_path: Path, broker: MosquittoBroker, assets: Path, vtest: Path,
        reference: ReferenceProfile, collector: tuple[CollectorService, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    """``edgewatch reference rebuild``: the device profiles its next frames (the whole
    reference, anomaly model included), switches, and publishes the new reference."""
    service, config = collector
    agent = started_device(assets, tmp_path, broker, "cam-2", reference)
    try:
        play(agent, vtest, 400, 500)
        with open_store(service.cfg.store.url) as store:
            wait_until(lambda: store.reference("cam-2", reference.id) is not None and
                       store.device("cam-2") is not None and
                       store.device("cam-2").online, 30,  # type: ignore[union-attr]
                       "cam-2 online with its reference")
        code, out = cli(capsys, "reference", "rebuild", "--device", "cam-2", "--frames", "20",
                        "--by", "carol", "--note", "lens replaced", "--config", str(config))
        assert code == 0, out
        assert out.startswith("cam-2: profiling its next 20 usable frames of context "
                              "default"), out

        play(agent, vtest, 500, 795)  # 20 measured frames by ~580; from 600, the new one
        agent.monitor.close()
        with open_store(service.cfg.store.url) as store:
            after = wait_until(lambda: [s for s in store.summaries("cam-2")
                                        if s.reference_id != reference.id], 30,
                               "windows judged on the rebuilt reference")
            new_id = after[0].reference_id
            assert {s.reference_id for s in after} == {new_id}
            assert all(s.drift is not None and s.drift.severity != "drift" for s in after), \
                [s.drift for s in after]
            rebuilt = wait_until(lambda: store.reference("cam-2", new_id), 30,
                                 "the rebuilt reference, published by the device")
            assert rebuilt.frames == 20 and rebuilt.anomaly is not None
        code, out = cli(capsys, "reference", "rebuild", "--device", "cam-2", "--status",
                        "--config", str(config))
        assert code == 0 and out.startswith(
            f"cam-2: no rebuild in progress; last rebuild: switched context 'default' to "
            f"{new_id} (previous {reference.id}) after 20 frames"), out
    finally:
        agent.close()

    code, out = cli(capsys, "reference", "history", "--device", "cam-2", "--json",
                    "--config", str(config))
    assert code == 0, out
    [record] = json.loads(out)
    assert (record["command"], record["by"], record["note"], record["state"],
            record["rebuild_frames"]) == ("reference.rebuild", "carol", "lens replaced",
                                          "answered", 20)


def test_window_ranges_are_read_as_operators_write_them() -> None:
    assert window_range("2026-01-01T00:00:00Z..2026-01-01T01:00:00") == (
        footage.START, footage.START + 3600.0)
    assert window_range("..1767225600") == (float("-inf"), footage.START)
    for bad in ("2026-01-01", "200..100", "yesterday..today"):
        with pytest.raises(RebaselineError):
            window_range(bad)
