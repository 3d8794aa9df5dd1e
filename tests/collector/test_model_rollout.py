"""A model rollout end to end: the real agent (live, SSDLite, its update lifecycle on)
publishing to a real Mosquitto broker, the real collector service, ``edgewatch model push``
and ``edgewatch model status`` as an operator runs them. A good model is pushed, shadowed,
committed and soaked; a model that outputs NaN is rejected, and its reason is what
``model status`` shows, while the device keeps running the good one."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewatch.agent.app import build_agent
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import Frame
from edgewatch.agent.update.files import active_model
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.cli import main
from edgewatch.collector.service import CollectorService
from edgewatch.config.agent import AgentConfig
from edgewatch.config.collector import load_collector_config
from support.broker import MosquittoBroker
from support.onnx_models import ssd_variant
from support.updates import reference_for, update_config
from support.waiting import wait_until


@pytest.fixture
def collector(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Path]:
    config = tmp_path / "collector.toml"
    config.write_text(f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                      f'client_id = "collector-rollout"\n[store]\nurl = '
                      f'"sqlite:///{tmp_path / "c.db"}"\n[http]\nport = 0\n', encoding="utf-8")
    service = CollectorService(load_collector_config(config))
    service.start()
    try:
        assert service.ingestor.subscribed.wait(15)
        yield config
    finally:
        service.close()


def status(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["model", "status", "--device", "cam-1", "--json", "--config",
                 str(config)]) == 0
    rows = json.loads(capsys.readouterr().out)
    return rows[0] if rows else {}


def push(capsys: pytest.CaptureFixture[str], config: Path, model: Path,
         reference: Path | None = None) -> dict[str, Any]:
    argv = ["model", "push", "--device", "cam-1", "--fleet", "f1", "--model", str(model),
            "--config", str(config), "--json"]
    if reference is not None:
        argv += ["--reference", str(reference)]
    capsys.readouterr()
    code = main(argv)
    [report] = json.loads(capsys.readouterr().out)
    assert code == 0 and report["state"] == "staged", report
    return dict(report)


def test_a_good_model_rolls_out_and_a_nan_model_is_rejected(
        tmp_path: Path, broker: MosquittoBroker, collector: Path, ssd_config: AgentConfig,
        ssd_reference: ReferenceProfile, vtest_frames: list[np.ndarray],
        capsys: pytest.CaptureFixture[str]) -> None:
    reference_file = tmp_path / "reference.json"
    ssd_reference.save(reference_file)
    (tmp_path / "device").mkdir()
    cfg = update_config(ssd_config, tmp_path / "device", reference_file)
    cfg = dataclasses.replace(
        cfg, device=dataclasses.replace(cfg.device, id="cam-1", fleet="f1"),
        mqtt=dataclasses.replace(cfg.mqtt, enabled=True, host=broker.host, port=broker.port,
                                 reconnect_min_s=0.05, reconnect_max_s=0.5),
        outbox=dataclasses.replace(cfg.outbox, path=str(tmp_path / "device" / "outbox.db")),
        alerts=dataclasses.replace(cfg.alerts, state_path=":memory:"))
    engine = InferenceEngine(active_model(cfg).model)
    agent = build_agent(cfg, ssd_reference, publish=True, live=True, engine=engine)
    agent.start()
    stop = threading.Event()

    def camera() -> None:  # the live loop, as `edgewatch run` drives it
        n = 0
        while not stop.is_set():
            agent.process(Frame(n, n / 25.0, vtest_frames[n % len(vtest_frames)]))
            n += 1
            stop.wait(0.005)

    loop = threading.Thread(target=camera, daemon=True)
    loop.start()
    try:
        good = Path(ssd_config.model.path)  # the same SSD file as a new version
        pushed = push(capsys, collector, good)
        done = wait_until(lambda: (s := status(capsys, collector)).get("state") == "done"
                          and s, 120, "the good model committed and soaked")
        assert done["update_id"] == pushed["update"] and not done.get("reason")

        nan = ssd_variant(good, tmp_path / "nan.onnx", "nan")
        push(capsys, collector, nan, reference_for(ssd_reference, nan, tmp_path / "nan.json"))
        rejected = wait_until(lambda: (s := status(capsys, collector)).get("state")
                              in ("rejected", "rolled_back") and s, 120, "the NaN model refused")
        assert "non-finite" in rejected["reason"], rejected
        assert Path(agent.engine.cfg.path).read_bytes() == good.read_bytes()  # still good
    finally:
        stop.set()
        loop.join(10)
        agent.close()
