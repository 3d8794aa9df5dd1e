"""Evidence through the fleet, end to end: a device (the real agent: ``build_agent`` with
the SSDLite model, publishing to a real Mosquitto broker) replays noised vtest footage, a
drift alert fires and keeps frames; the real collector service stores the summaries and the
chunks; ``edgewatch evidence list|pull`` fetch the frames into a dataset folder -- queued
while the device is offline, through a broker outage, resumed after a disconnect -- and the
retrain advisory names the drifted features (none on clean footage)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewatch.agent.app import Agent, build_agent
from edgewatch.agent.evidence.store import EvidenceStore
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import Frame
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.cli import main
from edgewatch.collector.advisory import Rule, advise_fleet
from edgewatch.collector.evidence import ChunkStore
from edgewatch.collector.evidence_pull import pull
from edgewatch.collector.service import CollectorService
from edgewatch.collector.store import open_store
from edgewatch.config.agent import AgentConfig, parse_config
from edgewatch.contracts.evidence import EvidenceChunk
from support import footage
from support.broker import MosquittoBroker
from support.evidence_fleet import (
    check_dataset,
    dataset_files,
    device_config,
    device_files,
    running_collector,
    stock_store,
    vtest_frames,
)
from support.paths import ssd_config_dict
from support.waiting import wait_until

FPS = 10.0
FRAMES = (400, 700)
"""vtest's frames 400-699: three 10 s windows against a reference of frames 0-399."""


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def reference(assets: Path, vtest: Path,
              tmp_path_factory: pytest.TempPathFactory) -> ReferenceProfile:
    """``profile build`` on vtest's frames 0-399 (as tests/collector/test_advisory.py)."""
    work = tmp_path_factory.mktemp("evidence-reference")
    footage.build_reference(footage.agent_config(assets, work), vtest, work)
    return ReferenceProfile.load(work / "reference.json")


@pytest.fixture
def collector(tmp_path: Path, broker: MosquittoBroker) -> Iterator[tuple[CollectorService, Path]]:
    with running_collector(tmp_path, broker) as running:
        yield running


def replay(cfg: AgentConfig, reference: ReferenceProfile, engine: InferenceEngine,
           vtest: Path, noise: bool) -> Agent:
    """The device replays vtest's FRAMES (noised or not) and publishes; returns it running."""
    agent = build_agent(cfg, reference, publish=True, live=False, engine=engine, lossless=True)
    agent.start()
    transform = footage.gaussian_noise(25.0)
    for i, image in vtest_frames(vtest, *FRAMES):
        if noise:
            image = transform(image, i)
        agent.process(Frame(i, footage.START + i / FPS, image))
    agent.monitor.close()  # the last window
    evidence, delivery = agent.outputs.evidence, agent.outputs.delivery
    assert evidence is not None and evidence.drain()
    assert delivery is not None and delivery.publisher is not None
    assert delivery.publisher.wait_drained(30), "the outbox did not drain"
    return agent


def restart(cfg: AgentConfig, reference: ReferenceProfile) -> Agent:
    """The device back after an absence: a new agent process on the same files."""
    agent = build_agent(cfg, reference, publish=True, live=False)
    agent.start()
    return agent


@pytest.mark.slow
def test_drift_evidence_reaches_a_dataset_through_the_fleet(
        tmp_path: Path, broker: MosquittoBroker, assets: Path, vtest: Path,
        reference: ReferenceProfile, collector: tuple[CollectorService, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    service, config = collector
    base = parse_config(ssd_config_dict(assets))
    engine = InferenceEngine(base.model)
    store_url = service.cfg.store.url
    # a clean device: no drift, no advisory
    clean_cfg = device_config(base, tmp_path / "cam-clean", broker, "cam-clean")
    replay(clean_cfg, reference, engine, vtest, noise=False).close()
    # the noised device: drift fires, frames are kept within their caps
    cfg = device_config(base, tmp_path / "cam-1", broker, "cam-1", send_kib_per_s=4096.0)
    agent = replay(cfg, reference, engine, vtest, noise=True)
    device_store = EvidenceStore(cfg.evidence.path, 1 << 30)
    with open_store(store_url) as store:
        alerts = wait_until(lambda: [a for a in store.alerts("cam-1") if a.rule == "drift"],
                            15, "the drift alert stored")
    alert_id = alerts[0].id
    kept = [r["id"] for r in device_store.frames(alert_id=alert_id)]
    assert 1 <= len(kept) <= cfg.evidence.pre_frames + cfg.evidence.post_frames
    assert len(device_store.frames()) <= cfg.evidence.max_per_hour

    # evidence list shows them
    code, out = cli(capsys, "evidence", "list", "cam-1", "--alert", alert_id,
                    "--config", str(config))
    assert code == 0, out
    assert all(frame_id in out for frame_id in kept) and f"{len(kept)} frames" in out

    # the device goes away: the pull is queued, and says so
    agent.close()
    with open_store(store_url) as store:
        wait_until(lambda: not store.device("cam-1").online, 15,  # type: ignore[union-attr]
                   "cam-1 offline")
    out_dir = tmp_path / "dataset"
    code, out = cli(capsys, "evidence", "pull", "cam-1", "--alert", alert_id, "--out",
                    str(out_dir), "--config", str(config))
    assert code == 0 and out.startswith("queued: cam-1 is offline since "), out

    # a broker outage between capture and pull loses nothing: the frames are on the device,
    # the request in the collector's store
    broker.stop()
    broker.start()
    assert service.ingestor.subscribed.wait(20)
    agent = restart(cfg, reference)  # back: the collector delivers the request on its birth
    try:
        with open_store(store_url) as store:
            wait_until(lambda: [c for c in store.commands("cam-1") if c.state == "answered"],
                       30, "the queued evidence.send answered")
        code, out = cli(capsys, "evidence", "pull", "cam-1", "--alert", alert_id, "--out",
                        str(out_dir), "--config", str(config))
        assert code == 0 and f"dataset in {out_dir}" in out, out
    finally:
        agent.close()
    counts = check_dataset(out_dir, kept)
    assert counts["boxes"] > 0 and "person" in counts["classes"]
    on_device = device_files(Path(cfg.evidence.path))
    pulled = dataset_files(out_dir)
    assert pulled and all(pulled[name] == on_device[name] for name in pulled)  # same sha256
    assert len(pulled) == 2 * len(kept)
    device_store.close()

    # the retrain advisory names the drifted features; the clean device gets none
    with open_store(store_url) as store:
        report = advise_fleet(store, Rule(min_windows=3, min_span_s=25.0),
                              footage.START + 3600.0)
    by = {a.device: a for a in report.devices}
    assert by["cam-1"].action == "retrain", by["cam-1"]
    assert {"noise", "edge_density"} <= {f.feature for f in by["cam-1"].features}
    assert by["cam-clean"].action == "none", by["cam-clean"]
    code, out = cli(capsys, "fleet", "advise", "--config", str(config))
    assert code == 0 and "cam-1 (f1): RETRAIN" in out and "cam-clean (f1): NONE" in out


def test_an_interrupted_pull_resumes_with_the_missing_chunks_only(
        tmp_path: Path, broker: MosquittoBroker, ssd_config: AgentConfig,
        ssd_reference: ReferenceProfile, vtest: Path,
        collector: tuple[CollectorService, Path]) -> None:
    service, _ = collector
    cfg = device_config(ssd_config, tmp_path / "cam-r", broker, "cam-r", chunk_kib=16,
                        send_kib_per_s=96.0)
    ids = stock_store(Path(cfg.evidence.path), vtest, 8, alert_id="a-7")
    agent = build_agent(cfg, ssd_reference, publish=True, live=False)
    delivery = agent.outputs.delivery
    assert delivery is not None and delivery.publisher is not None
    sender = delivery.publisher.bulk
    agent.start()
    try:
        assert delivery.publisher.connected.wait(10)
        with open_store(service.cfg.store.url) as store:
            wait_until(lambda: store.device("cam-r"), 10, "cam-r known")
        chunks = ChunkStore(service.cfg.evidence.dir)
        out = tmp_path / "dataset"
        found: dict[str, object] = {}

        def first_pull() -> None:
            with open_store(service.cfg.store.url) as store:
                found["report"] = pull(service.cfg, store, "cam-r", out, alert="a-7",
                                       wait_s=2.0)

        puller = threading.Thread(target=first_pull)
        puller.start()
        wait_until(lambda: service.evidence.stored >= 15, 30, "a third of the chunks")
        broker.stop()  # mid-transfer: device and collector lose the connection
        puller.join(30)
        first = found["report"]
        total = first.requested_chunks  # type: ignore[attr-defined]
        missing = first.missing_chunks  # type: ignore[attr-defined]
        assert first.state == "incomplete" and 0 < missing < total, first  # type: ignore[attr-defined]
        broker.start()
        assert delivery.publisher.connected.wait(20)
        assert service.ingestor.subscribed.wait(20)
        sent_before = sender.sent  # type: ignore[union-attr]
        with open_store(service.cfg.store.url) as store:
            second = pull(service.cfg, store, "cam-r", out, alert="a-7", wait_s=5.0)
        resent = sender.sent - sent_before  # type: ignore[union-attr]
    finally:
        agent.close()
    print(f"\ninterrupted pull: {total} chunks requested, {missing} missing after the "
          f"outage; the resumed pull requested {second.requested_chunks}, the device sent "
          f"{resent}")
    assert second.state == "complete", second
    assert second.requested_chunks == missing and resent == missing
    assert chunks.missing("cam-r", chunks.select("cam-r", "a-7")) == {}
    check_dataset(out, ids)
    on_device = device_files(Path(cfg.evidence.path))
    assert all(on_device[name] == sha for name, sha in dataset_files(out).items())
    assert len(dataset_files(out)) == 2 * len(ids)


def test_chunks_of_a_file_are_joined_only_when_they_hash_right(tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    sha = hashlib.sha256(data).hexdigest()
    store = ChunkStore(tmp_path)

    def chunk(i: int, body: bytes, digest: str = sha) -> EvidenceChunk:
        return EvidenceChunk(frame="f-1", file="f-1.jpg", index=i, count=3, size=len(data),
                             sha256=digest, data=body, device="cam")

    parts = [data[i * 10000:(i + 1) * 10000] for i in range(3)]
    assert store.put("cam", chunk(2, parts[2])) == "stored"
    assert store.put("cam", chunk(0, parts[0])) == "stored"
    assert store.put("cam", chunk(1, b"x" * 10000)) == "corrupt"
    assert not store.file_path("cam", "f-1", "f-1.jpg").exists()
    for i in (0, 1, 2):
        result = store.put("cam", chunk(i, parts[i]))
    assert result == "joined"
    assert store.file_path("cam", "f-1", "f-1.jpg").read_bytes() == data
    assert store.put("cam", chunk(0, parts[0])) == "duplicate"
    with pytest.raises(ValueError):
        store.put("../etc", chunk(0, parts[0]))
