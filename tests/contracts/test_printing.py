"""Payloads for people (edgewatch.contracts.printing): one payload or JSON lines, in either
encoding, decoded through the contracts into the type the schema or the leaf names."""

from __future__ import annotations

import json

import pytest

from edgewatch.contracts import CommandResult, Rejected, Status, SummaryV1, codec
from edgewatch.contracts.printing import LEAF_OF_SCHEMA, LEAVES, decode_all, decode_payload
from edgewatch.contracts.status import Manifest
from support.paths import DATA

EXAMPLE = (DATA / "summary-example.json").read_bytes()


def status() -> Status:
    manifest = Manifest(device="cam-1", fleet="f1", boot_id="b1", started=1767225600.0,
                        model_name="m", model_sha256="ab" * 32, adapter="ssd",
                        reference_id="r1", config_sha256="cd" * 32)
    return Status(state="online", device="cam-1", boot_id="b1", time=1767225601.0,
                  manifest=manifest)


def test_every_schema_names_a_leaf_the_codec_knows() -> None:
    assert set(LEAVES) == set(codec.DEVICE_MESSAGES)
    assert set(LEAF_OF_SCHEMA.values()) == set(LEAVES)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_a_payload_decodes_into_the_type_its_schema_names(encoding: str) -> None:
    message = decode_payload(codec.encode(status(), encoding))
    assert message == status()
    result = CommandResult(command="ping", ok=True, pong=True)
    assert decode_payload(codec.encode(result, encoding), "cmd_result") == result


def test_a_replay_summary_line_is_a_schema_1_summary() -> None:
    message = decode_payload(EXAMPLE)
    assert isinstance(message, SummaryV1)
    assert message.window.start == json.loads(EXAMPLE)["window"]["start"]


@pytest.mark.parametrize(("raw", "leaf", "reason"), [
    (b"  \n", None, "encoding"),
    (b'{"schema": "edgewatch.nothing/9"}', None, "schema"),
    (b'{"schema": "edgewatch.status/1"}', "weather", "topic"),
    (b'{"schema": "edgewatch.status/1", "state": "online"}', None, "invalid"),
    (b"\x01\x02", None, "encoding"),
])
def test_refusals_name_their_reason(raw: bytes, leaf: str | None, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        decode_payload(raw, leaf)
    assert caught.value.reason == reason


def test_json_lines_are_decoded_one_by_one_with_their_line_numbers() -> None:
    good = codec.encode(status(), "json")
    raw = b"\n".join([good, b"", b'{"schema": "edgewatch.status/1"}', good]) + b"\n"
    out = list(decode_all(raw))
    assert [n for n, _ in out] == [1, 3, 4]
    assert out[0][1] == status() and out[2][1] == status()
    assert isinstance(out[1][1], Rejected) and out[1][1].reason == "invalid"


def test_one_document_over_several_lines_is_one_payload() -> None:
    pretty = json.dumps(json.loads(codec.encode(status(), "json")), indent=2).encode()
    assert list(decode_all(pretty)) == [(None, status())]


def test_bytes_that_are_neither_encoding_give_one_refusal() -> None:
    [(line, refused)] = list(decode_all(b"\x00garbage"))
    assert line is None and isinstance(refused, Rejected) and refused.reason == "encoding"
