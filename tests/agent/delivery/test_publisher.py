"""The publisher (edgewatch.agent.delivery.publisher) draining a queue to a real Mosquitto,
and the status messages it announces (edgewatch.agent.delivery.status).

The queue here is a list with the outbox's interface, so that what is checked is the
publisher's own work: a row leaves only after its PUBACK, a row that cannot be encoded is
rejected, a backlog is flagged historical, commands are answered through the queue, and the
birth and the clean shutdown are announced on the status topic.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery.outbox import OutboxRow
from edgewatch.agent.delivery.publisher import Publisher, make_client
from edgewatch.agent.delivery.status import Manifest, birth, config_sha256, offline
from edgewatch.agent.delivery.wire import RowEncoder, backlog_encoder
from edgewatch.config.delivery import MqttConfig
from edgewatch.contracts import MSGPACK, Status, codec
from edgewatch.contracts.topics import Topics
from support.broker import MosquittoBroker
from support.subscriber import Collector

TOPICS = Topics("edgewatch/v1", "f1", "cam-1")
MANIFEST = Manifest(device="cam-1", fleet="f1", boot_id="boot-1", started=1767225600.0,
                    model_name="m", model_sha256="ab" * 32, adapter="ssd", reference_id="r1",
                    config_sha256="")


class ListQueue:
    """Rows in memory, with the outbox's interface and its transport fields."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[int, OutboxRow] = {}
        self.acked: list[int] = []
        self.rejected: dict[int, str] = {}
        self.seq = 0

    def put(self, kind: str, payload: dict[str, Any], *, priority: int | None = None,
            body: str | None = None, wire: bytes | None = None) -> int:
        with self.lock:
            self.seq += 1
            payload = {**payload, "device": "cam-1", "boot_id": "boot-1", "seq": self.seq}
            self.rows[self.seq] = OutboxRow(self.seq, kind, priority or 0, time.time(),
                                            body or json.dumps(payload), wire=wire)
            return self.seq

    def pending(self, limit: int, exclude: Collection[int] = ()) -> list[OutboxRow]:
        with self.lock:
            return [r for s, r in sorted(self.rows.items()) if s not in exclude][:limit]

    def ack_many(self, seqs: list[int]) -> None:
        with self.lock:
            for s in seqs:
                del self.rows[s]
            self.acked += seqs

    def reject(self, seq: int, reason: str) -> None:
        with self.lock:
            del self.rows[seq]
            self.rejected[seq] = reason


def result(command: str) -> dict[str, Any]:
    return {"schema": "edgewatch.cmd_result/1", "command": command, "ok": True}


@pytest.fixture
def collector(broker: MosquittoBroker) -> Iterator[Collector]:
    c = Collector(broker.port, client_id="publisher-test")
    deadline = time.monotonic() + 10.0  # subscribed: it receives its own probe
    while not c.of("ready") and time.monotonic() < deadline:
        c.client.publish("edgewatch/v1/f0/probe/cmd/ready", b"{}", qos=1)
        time.sleep(0.1)
    assert c.of("ready"), "the test subscriber did not subscribe"
    yield c
    c.close()


def publisher_for(broker: MosquittoBroker, queue: ListQueue, **cfg: Any) -> Publisher:
    mqtt_cfg = MqttConfig(enabled=True, host=broker.host, port=broker.port,
                          reconnect_min_s=0.05, reconnect_max_s=0.2, **cfg)
    router = CommandRouter()
    return Publisher(mqtt_cfg, queue, TOPICS, MANIFEST, commands=router)


def test_a_backlog_drains_after_pubacks_and_bad_rows_are_rejected(
        broker: MosquittoBroker, collector: Collector) -> None:
    queue = ListQueue()
    first = queue.put("cmd_result", result("one"))
    queue.put("cmd_result", result("two"))
    broken = queue.put("summary", {}, body="{not json")
    publisher = publisher_for(broker, queue)
    publisher.start()
    try:
        assert publisher.connected.wait(10)
        assert publisher.wait_drained(10)
        live = queue.put("cmd_result", result("three"))
        publisher.wake()
        assert publisher.wait_drained(10)
        got = collector.wait_for("cmd_result", 3)
    finally:
        publisher.stop()
    assert [m["command"] for m in got] == ["one", "two", "three"]
    assert [m.get("historical", False) for m in got] == [True, True, False]
    assert [m["seq"] for m in got] == [first, first + 1, live]
    assert sorted(queue.acked) == [first, first + 1, live] and not queue.rows
    assert list(queue.rejected) == [broken]
    assert "cannot be encoded" in queue.rejected[broken]
    assert collector.content_types("cmd_result") == {MSGPACK}


def test_a_backlog_goes_out_as_the_outbox_stored_it(broker: MosquittoBroker,
                                                     collector: Collector) -> None:
    queue = ListQueue()
    encode = backlog_encoder(MqttConfig())
    assert encode is not None and backlog_encoder(MqttConfig(encoding="json")) is None
    stored = encode({**result("as stored"), "device": "cam-1", "boot_id": "boot-1", "seq": 1})
    queue.put("cmd_result", result("from the body"), wire=stored)
    publisher = publisher_for(broker, queue)
    publisher.start()
    try:
        assert publisher.wait_drained(10)
        queue.put("cmd_result", result("live"), wire=stored)  # not historical: the body
        publisher.wake()
        assert publisher.wait_drained(10)
        got = collector.wait_for("cmd_result", 2)
    finally:
        publisher.stop()
    assert [(m["command"], m.get("historical", False)) for m in got] == [
        ("as stored", True), ("live", False)]


def test_the_stored_wire_payload_is_what_the_publisher_would_encode() -> None:
    payload = {**result("one"), "device": "cam-1", "boot_id": "boot-1", "seq": 7}
    for encoding in ("msgpack", "json"):
        cfg = MqttConfig(encoding=encoding)
        sent = RowEncoder(encoding).from_body(json.dumps(payload), historical=True)
        encode = backlog_encoder(cfg)
        assert encode is None or encode(payload) == sent
        assert codec.decode("cmd_result", sent).historical


def test_a_row_handed_out_without_its_body_is_sent_from_its_wire_payload() -> None:
    payload = {**result("one"), "device": "cam-1", "boot_id": "boot-1", "seq": 7}
    encode = backlog_encoder(MqttConfig())
    assert encode is not None
    row = OutboxRow(7, "cmd_result", 1, time.time(), "", wire=encode(payload))
    rows = RowEncoder("msgpack")
    assert rows.payload(row, historical=True) == row.wire
    live = codec.decode("cmd_result", rows.payload(row, historical=False))
    assert (live.command, live.seq, live.historical) == ("one", 7, False)
    sent = RowEncoder("json").payload(row, historical=True)  # the encoding changed since
    assert sent.startswith(b"{") and codec.decode("cmd_result", sent).historical


def test_birth_commands_and_a_clean_shutdown(broker: MosquittoBroker,
                                             collector: Collector) -> None:
    queue = ListQueue()
    publisher = publisher_for(broker, queue, encoding="json")
    publisher.start()
    try:
        assert publisher.connected.wait(10)
        [online] = collector.wait_for("status", 1)
        assert online["state"] == "online" and online["manifest"]["model_name"] == "m"
        collector.client.publish(TOPICS.cmd("ping"), b'{"id": "p1"}', qos=1)
        [answer] = collector.wait_for("cmd_result", 1)
        assert (answer["command"], answer["id"], answer["ok"], answer["pong"]) == (
            "ping", "p1", True, True)
    finally:
        publisher.stop()
    status = collector.wait_for("status", 2)
    assert (status[1]["state"], status[1]["reason"]) == ("offline", "shutdown")
    assert publisher.connections == 1
    assert collector.content_types("status") == {codec.JSON}


def test_mqtt_3_1_1_clients_carry_no_properties() -> None:
    client = make_client(MqttConfig(protocol="3.1.1", max_inflight=5), "c1")
    assert client.protocol == mqtt.MQTTv311
    publisher = Publisher(MqttConfig(protocol="3.1.1"), ListQueue(), TOPICS, MANIFEST)
    assert publisher._properties() is None
    assert publisher.client_id == "edgewatch-cam-1"


# --------------------------------------------------------------------------- status


def test_birth_and_offline_messages(tmp_path: Path) -> None:
    online = birth(MANIFEST, 1767225700.0)
    assert (online.state, online.device, online.boot_id, online.time) == (
        "online", "cam-1", "boot-1", 1767225700.0)
    assert online.manifest == MANIFEST
    will = offline(MANIFEST, None, "connection lost")
    assert (will.state, will.time, will.reason, will.manifest) == (
        "offline", None, "connection lost", None)
    for message in (online, will):
        assert codec.decode("status", codec.encode(message)) == message
        assert isinstance(message, Status)


def test_config_sha256_is_the_digest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b'[device]\nid = "cam-1"\n')
    assert config_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert config_sha256(str(path)) == config_sha256(path)
    assert config_sha256(None) == ""
