"""Store-and-forward against real Mosquitto processes: outages, last will, ordering."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import MosquittoBroker
from conftest import ssd_config_dict
from edgewatch.agent import Agent
from edgewatch.config import AgentConfig, parse_config
from edgewatch.delivery import Delivery
from edgewatch.inference import InferenceEngine
from edgewatch.reference import ReferenceProfile
from edgewatch.sinks import ListSink, Tee
from edgewatch.sources import open_source


class Collector:
    """A QoS 1 subscriber with a persistent session (the broker queues for it while it is
    away), recording every message."""

    def __init__(self, port: int, topic: str = "edgewatch/v1/#",
                 client_id: str = "test-collector") -> None:
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:  # the malformed commands this test itself sends
            payload = {"raw": msg.payload.decode("utf-8", "replace")}
        with self.lock:
            self.messages.append((msg.topic, payload, bool(msg.retain)))

    def of(self, leaf: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith("/" + leaf)]

    def wait_for(self, leaf: str, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(leaf)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.of(leaf))} of {n} {leaf} messages arrived")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def mqtt_config(assets: Path, tmp_path: Path, port: int, **mqtt_extra: Any) -> AgentConfig:
    d = ssd_config_dict(assets, window={"seconds": 2.0},
                        mqtt={"enabled": True, "port": port, "reconnect_min_s": 0.05,
                              "reconnect_max_s": 0.3, "historical_after_s": 60.0,
                              **mqtt_extra},
                        outbox={"path": str(tmp_path / "outbox.db")},
                        device={"id": "cam-1", "fleet": "f1"})
    return parse_config(d)


def delivery_for(cfg: AgentConfig, engine: InferenceEngine,
                 reference: ReferenceProfile) -> Delivery:
    return Delivery(cfg, reference, device="cam-1", model_name=engine.model_name,
                    model_sha256=engine.model_sha256, config_path=None, publish=True)


def test_outage_loses_nothing_and_backlog_is_historical(
        broker_factory: Callable[..., MosquittoBroker], assets: Path, tmp_path: Path,
        vtest: Path, ssd_engine: InferenceEngine, ssd_reference: ReferenceProfile) -> None:
    broker = broker_factory(persistence=True)  # sessions survive the broker's restart
    broker.start()
    cfg = mqtt_config(assets, tmp_path, broker.port)
    collector = Collector(broker.port)
    delivery = delivery_for(cfg, ssd_engine, ssd_reference)
    delivery.start()
    assert delivery.publisher is not None and delivery.publisher.connected.wait(10)
    produced = ListSink()

    def outage(summary: Any) -> None:  # runs after each window is queued
        n = len(produced.summaries)
        if n == 2:
            collector.wait_for("summary", 2)
            broker.stop()
        elif n == 6:
            broker.start()

    agent = Agent(cfg, ssd_engine, ssd_reference, Tee(delivery.sink, produced, outage),
                  live=False, lossless=True)
    agent.run(open_source(str(vtest), start_time=1000.0, first=0, last=199))  # 10 windows
    assert delivery.close(drain_timeout=30.0)
    got = collector.wait_for("summary", 10)
    collector.close()
    keys = [(p["device"], p["boot_id"], p["seq"]) for p in got]
    assert len(set(keys)) == len(keys) == 10, "no duplicates, nothing missing"
    seqs = [p["seq"] for p in got]
    assert seqs == sorted(seqs) and seqs == list(range(seqs[0], seqs[0] + 10))
    starts = [p["window"]["start"] for p in got]
    assert starts == [1000.0 + 2 * i for i in range(10)], "original window times"
    historical = [bool(p.get("historical")) for p in got]
    assert historical[:2] == [False, False]
    assert all(historical[2:6]), "queued during the outage"
    assert delivery.publisher.connections >= 2


def test_birth_will_and_clean_shutdown(broker: MosquittoBroker, assets: Path, tmp_path: Path,
                                       ssd_engine: InferenceEngine,
                                       ssd_reference: ReferenceProfile) -> None:
    cfg = mqtt_config(assets, tmp_path, broker.port, keepalive_s=5)
    collector = Collector(broker.port)
    delivery = delivery_for(cfg, ssd_engine, ssd_reference)
    delivery.start()
    [birth] = collector.wait_for("status", 1)
    assert birth["state"] == "online" and birth["schema"] == "edgewatch.status/1"
    manifest = birth["manifest"]
    assert manifest["model_sha256"] == ssd_engine.model_sha256
    assert manifest["reference_id"] == ssd_reference.id and manifest["adapter"] == "ssd"
    assert manifest["boot_id"] == delivery.boot_id
    # The connection dies without DISCONNECT: the broker sends the last will.
    publisher = delivery.publisher
    assert publisher is not None and publisher._client is not None
    publisher._client.socket().close()
    statuses = collector.wait_for("status", 2)
    assert statuses[1]["state"] == "offline" and statuses[1]["reason"] == "connection lost"
    # The publisher comes back on its own, then shuts down cleanly.
    assert collector.wait_for("status", 3)[2]["state"] == "online"
    delivery.close()
    final = collector.wait_for("status", 4)[3]
    assert final["state"] == "offline" and final["reason"] == "shutdown"
    collector.close()
    # The retained status tells a newcomer the device is offline.
    late = Collector(broker.port, "edgewatch/v1/f1/cam-1/status", client_id="late")
    late.wait_for("status", 1)
    [(_, retained, flag)] = late.messages
    assert flag and retained["state"] == "offline"
    late.close()


def test_commands_are_answered(broker: MosquittoBroker, assets: Path, tmp_path: Path,
                               ssd_engine: InferenceEngine,
                               ssd_reference: ReferenceProfile) -> None:
    cfg = mqtt_config(assets, tmp_path, broker.port)
    collector = Collector(broker.port)
    delivery = delivery_for(cfg, ssd_engine, ssd_reference)
    delivery.start()
    assert delivery.publisher is not None and delivery.publisher.connected.wait(10)
    base = "edgewatch/v1/f1/cam-1/cmd/"
    collector.client.publish(base + "ping", json.dumps({"id": "a1"}), qos=1)
    collector.client.publish(base + "ping", b"{not json", qos=1)
    collector.client.publish(base + "explode", b"{}", qos=1)
    results = collector.wait_for("cmd_result", 3)
    delivery.close()
    collector.close()
    by_outcome = sorted(results, key=lambda r: (r["ok"], r["command"]))
    transport = {"device", "boot_id", "seq"}
    assert {k: v for k, v in by_outcome[2].items() if k not in transport} == {
        "schema": "edgewatch.cmd_result/1", "command": "ping", "id": "a1", "ok": True,
        "pong": True}
    assert all(r["device"] == "cam-1" and r["boot_id"] == delivery.boot_id for r in results)
    errors = {r["command"]: r["error"] for r in results if not r["ok"]}
    assert "not JSON" in errors["ping"] and "unknown command 'explode'" in errors["explode"]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_both_protocol_versions_deliver(broker: MosquittoBroker, assets: Path, tmp_path: Path,
                                        ssd_engine: InferenceEngine,
                                        ssd_reference: ReferenceProfile, protocol: str) -> None:
    cfg = mqtt_config(assets, tmp_path, broker.port, protocol=protocol)
    collector = Collector(broker.port)
    delivery = delivery_for(cfg, ssd_engine, ssd_reference)
    for i in range(5):
        delivery.outbox.put("summary", {"schema": "edgewatch.summary/1", "i": i}, priority=0)
    delivery.start()
    got = collector.wait_for("summary", 5)
    assert [p["i"] for p in got] == list(range(5))
    assert delivery.publisher is not None and delivery.publisher.wait_drained(5)
    assert delivery.outbox.stats().pending == 0
    delivery.close()
    collector.close()
