"""The birth manifest's deployment fields (edgewatch.contracts.status): optional, omitted
when empty, bounded; births of agents that do not send them still decode."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from edgewatch.contracts import codec
from edgewatch.contracts.codec import Rejected
from edgewatch.contracts.status import Manifest, Status

OLD_BIRTH: dict[str, Any] = {  # as an agent before the [deployment] section published it
    "schema": "edgewatch.status/1", "state": "online", "device": "cam-1", "boot_id": "b1",
    "time": 1767225700.0,
    "manifest": {"device": "cam-1", "fleet": "f1", "boot_id": "b1", "started": 1767225600.0,
                 "model_name": "ssd.onnx", "model_sha256": "ab" * 32, "adapter": "ssd",
                 "reference_id": "0123456789abcdef", "config_sha256": "",
                 "agent_version": "0.9.0", "feature_set_version": "7"},
}


def manifest(**fields: Any) -> Manifest:
    return msgspec.convert({**OLD_BIRTH["manifest"], **fields}, Manifest)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_an_old_birth_without_deployment_fields_decodes(encoding: str) -> None:
    message = codec.decode("status", codec.encode(OLD_BIRTH, encoding))
    assert isinstance(message, Status) and message.manifest is not None
    m = message.manifest
    assert (m.model_name, m.agent_version, m.reference_id) == ("ssd.onnx", "0.9.0",
                                                               "0123456789abcdef")
    assert (m.model_version, m.owner, m.training_data, m.evaluation, m.notes) == (
        "", "", "", {}, "")


@pytest.mark.parametrize("evaluation", [{"mAP": 0.41, "recall": 0.6}, "see eval.pdf"])
def test_deployment_fields_travel_in_both_encodings(evaluation: Any) -> None:
    m = manifest(model_version="2.3.0", owner="team", training_data="COCO 2017",
                 evaluation=evaluation, notes="n")
    birth = Status(state="online", device="cam-1", boot_id="b1", time=1.0, manifest=m)
    for encoding in ("json", "msgpack"):
        assert codec.decode("status", codec.encode(birth, encoding)) == birth


def test_empty_deployment_fields_are_omitted() -> None:
    wire = msgspec.json.decode(msgspec.json.encode(manifest()))
    assert not {"model_version", "owner", "training_data", "evaluation", "notes"} & set(wire)


@pytest.mark.parametrize("fields", [
    {"evaluation": {"mAP": float("nan")}},
    {"evaluation": {"": 0.5}},
    {"evaluation": {f"m{i}": 0.5 for i in range(257)}},
    {"evaluation": 3},
    {"owner": "x" * 4097},
    {"model_version": "v" * 129},
    {"notes": "a\x00b"},
])
def test_deployment_fields_are_bounded(fields: dict[str, Any]) -> None:
    birth = {**OLD_BIRTH, "manifest": {**OLD_BIRTH["manifest"], **fields}}
    with pytest.raises(Rejected):
        codec.decode("status", codec.encode(birth, "json"))
