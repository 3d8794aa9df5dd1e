"""The ``[deployment]`` section in the birth message (edgewatch.agent.delivery.assembly's
``Delivery`` with its real publisher and a real Mosquitto), decoded as the collector decodes
it (edgewatch.collector.validate) and stored as it stores it (read_manifest)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from edgewatch.agent.delivery.assembly import Delivery
from edgewatch.agent.delivery.status import deployment_fields
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.collector.store.reads import read_manifest
from edgewatch.collector.validate import check
from edgewatch.config.agent import parse_config
from edgewatch.config.maintenance import DeploymentConfig
from edgewatch.contracts.status import Status
from support.broker import MosquittoBroker
from support.paths import ssd_config_dict
from support.subscriber import Collector

DEPLOYMENT = {"model_version": "2.3.0", "owner": "vision-team", "notes": "entrance camera",
              "training_data": "COCO 2017 train", "evaluation": {"mAP": 0.22, "recall": 0.61}}


@pytest.fixture
def collector(broker: MosquittoBroker) -> Iterator[Collector]:
    c = Collector(broker.port, client_id="deployment-birth-test")
    yield c
    c.close()


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_the_birth_carries_the_deployment_fields(
        encoding: str, tmp_path: Path, assets: Path, broker: MosquittoBroker,
        collector: Collector, ssd_engine: InferenceEngine,
        ssd_reference: ReferenceProfile) -> None:
    cfg = parse_config(ssd_config_dict(
        assets, device={"id": "cam-7", "fleet": "f1"}, deployment=DEPLOYMENT,
        mqtt={"enabled": True, "host": broker.host, "port": broker.port,
              "encoding": encoding, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2},
        outbox={"path": str(tmp_path / "outbox.db")}))
    delivery = Delivery(cfg, ssd_reference, device="cam-7", model_name=ssd_engine.model_name,
                        model_sha256=ssd_engine.model_sha256, config_path=None, publish=True)
    delivery.start()
    try:
        [(topic, raw, _)] = collector.wait_for_raw("status", 1)  # retained or live
    finally:
        delivery.close()
    checked = check(topic, raw, cfg.mqtt.topic_root)
    assert checked is not None
    leaf, fleet, device, message = checked[:4]
    assert (leaf, fleet, device) == ("status", "f1", "cam-7")
    assert isinstance(message, Status) and message.state == "online"
    manifest = message.manifest
    assert manifest is not None and manifest == delivery.manifest
    assert (manifest.model_version, manifest.owner, manifest.training_data, manifest.notes) == (
        "2.3.0", "vision-team", "COCO 2017 train", "entrance camera")
    assert manifest.evaluation == {"mAP": 0.22, "recall": 0.61}
    assert (manifest.model_sha256, manifest.reference_id) == (ssd_engine.model_sha256,
                                                              ssd_reference.id)
    assert read_manifest(msgspec.json.encode(manifest)) == manifest  # the devices table


def test_an_empty_section_adds_nothing_to_the_birth() -> None:
    fields = deployment_fields(DeploymentConfig())
    assert fields == {"model_version": "", "owner": "", "training_data": "",
                      "evaluation": {}, "notes": ""}
    assert deployment_fields(DeploymentConfig(evaluation="report.pdf"))["evaluation"] == \
        "report.pdf"
