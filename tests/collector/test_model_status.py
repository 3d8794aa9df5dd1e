"""``edgewatch model status`` over a real broker: a device (the real SSD agent, publishing)
reports its update lifecycle retained on ``update_status``; the operator reads where each
update is and why a bad one was rejected or rolled back."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest

from edgewatch.agent.app import build_agent
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.update.files import active_model
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.cli import main
from edgewatch.collector.update_status import format_statuses
from edgewatch.config.agent import AgentConfig
from support.broker import MosquittoBroker
from support.onnx_models import ssd_variant
from support.updates import drive, reference_for, stage, update_config


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def device_config(base: AgentConfig, workdir: Path, broker: MosquittoBroker,
                  reference: Path) -> AgentConfig:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = update_config(base, workdir, reference)
    return dataclasses.replace(
        cfg, mqtt=dataclasses.replace(cfg.mqtt, enabled=True, host=broker.host,
                                      port=broker.port, reconnect_min_s=0.05,
                                      reconnect_max_s=0.5),
        outbox=dataclasses.replace(cfg.outbox, path=str(workdir / "outbox.db")),
        device=dataclasses.replace(cfg.device, id="cam-7", fleet="yard"))


def test_model_status_shows_a_rejected_update_and_its_reason(
        tmp_path: Path, broker: MosquittoBroker, ssd_config: AgentConfig,
        ssd_reference: ReferenceProfile, vtest_frames: list[np.ndarray],
        capsys: pytest.CaptureFixture[str]) -> None:
    reference = tmp_path / "reference.json"
    ssd_reference.save(reference)
    cfg = device_config(ssd_config, tmp_path / "device", broker, reference)
    active = active_model(cfg)
    engine = InferenceEngine(active.model)
    agent = build_agent(active, ssd_reference, publish=True, live=True, engine=engine,
                        base_config=cfg)
    assert agent.update is not None
    agent.start()
    try:
        bad = ssd_variant(Path(ssd_config.model.path), tmp_path / "nan.onnx", "nan")
        agent.update.received(stage(tmp_path, bad, "push-nan",
                                    reference_for(ssd_reference, bad, tmp_path / "r.json")))
        drive(agent, vtest_frames, agent.update.done.is_set)
        time.sleep(0.5)  # the retained publish reaches the broker
    finally:
        agent.close(2.0)
    config = tmp_path / "collector.toml"
    config.write_text(f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                      f'[store]\nurl = "sqlite:///{tmp_path / "store.db"}"\n')
    code, out = cli(capsys, "model", "status", "--device", "cam-7", "--config", str(config),
                    "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 1
    row = rows[0]
    assert row["schema"] == "edgewatch.update_status/1"
    assert (row["device"], row["update_id"], row["state"]) == ("cam-7", "push-nan", "rejected")
    assert "non-finite" in row["reason"]
    assert row["running_sha256"] == engine.model_sha256
    code, text = cli(capsys, "model", "status", "--config", str(config))
    assert code == 0
    assert "cam-7" in text and "rejected" in text and "non-finite" in text


def test_no_status_is_said_in_words() -> None:
    assert format_statuses([]).startswith("no model update statuses")
