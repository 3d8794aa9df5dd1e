"""What the collector checks before storing (edgewatch.collector.validate): the topic, the
payload's contract, and that the payload names the topic's device."""

from __future__ import annotations

import pytest

from edgewatch.collector.validate import Rejected, check
from edgewatch.contracts import MSGPACK, CommandResult, Status, codec

ROOT = "edgewatch/v1"


def offline(device: str = "cam-1") -> Status:
    return Status(state="offline", device=device, boot_id="b1", time=1767225600.0,
                  reason="shutdown")


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_a_device_message_comes_back_with_its_topic_parts(encoding: str) -> None:
    raw = codec.encode(offline(), encoding)
    ctype = codec.content_type(encoding)
    json = codec.to_json(offline()).encode()
    assert check(f"{ROOT}/f1/cam-1/status", raw, ROOT, ctype) == (
        "status", "f1", "cam-1", offline(), json)
    assert check(f"{ROOT}/f1/cam-1/status", raw, ROOT + "/") == (
        "status", "f1", "cam-1", offline(), json)  # content type recognised from the bytes


def test_commands_the_collector_sent_itself_are_not_stored() -> None:
    assert check(f"{ROOT}/f1/cam-1/cmd/ack", b"{}", ROOT) is None


@pytest.mark.parametrize(("topic", "raw", "ctype", "reason"), [
    ("other/v1/f1/cam-1/status", codec.encode(offline()), None, "topic"),
    (f"{ROOT}/f1/status", codec.encode(offline()), None, "topic"),
    (f"{ROOT}/f1/cam-1/weather", codec.encode(offline()), None, "topic"),
    (f"{ROOT}/f1/cam-2/status", codec.encode(offline()), None, "device"),
    (f"{ROOT}/f1/cam-1/cmd_result", codec.encode(offline()), None, "schema"),
    (f"{ROOT}/f1/cam-1/status", codec.encode(offline(), "json"), MSGPACK, "encoding"),
    (f"{ROOT}/f1/cam-1/status", b'{"schema": "edgewatch.status/1"}', None, "invalid"),
])
def test_refusals_name_their_reason(topic: str, raw: bytes, ctype: str | None,
                                    reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        check(topic, raw, ROOT, ctype)
    assert caught.value.reason == reason


def test_a_device_mismatch_names_both_devices() -> None:
    result = CommandResult(command="ping", ok=True, device="cam-2")
    with pytest.raises(Rejected, match=r"^device: payload device 'cam-2' published under "
                                       r"'cam-1'$"):
        check(f"{ROOT}/f1/cam-1/cmd_result", codec.encode(result), ROOT)
