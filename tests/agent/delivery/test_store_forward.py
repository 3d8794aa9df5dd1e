"""Store-and-forward against real Mosquitto processes: outages, last will, ordering, and
the payloads as the collector decodes them (content type, contracts)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from edgewatch.agent.app import Agent
from edgewatch.agent.delivery.assembly import Delivery
from edgewatch.agent.delivery.sinks import ListSink, Tee
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.source import open_source
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.config.agent import AgentConfig, parse_config
from edgewatch.contracts import JSON, MSGPACK, Reference, Summary, codec
from support.broker import MosquittoBroker
from support.paths import ssd_config_dict
from support.subscriber import Collector


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
    # birth, last will (sent by the broker) and shutdown all name their encoding
    assert collector.content_types("status") == {MSGPACK}


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_published_summaries_decode_to_their_windows_and_the_reference_is_retained(
        broker: MosquittoBroker, assets: Path, tmp_path: Path, vtest: Path,
        ssd_engine: InferenceEngine, ssd_reference: ReferenceProfile, encoding: str) -> None:
    cfg = mqtt_config(assets, tmp_path, broker.port, encoding=encoding)
    collector = Collector(broker.port)
    delivery = delivery_for(cfg, ssd_engine, ssd_reference)
    delivery.start()
    publisher = delivery.publisher
    assert publisher is not None and publisher.connected.wait(10)
    produced = ListSink()
    agent = Agent(cfg, ssd_engine, ssd_reference, Tee(delivery.sink, produced), live=False,
                  lossless=True)
    agent.run(open_source(str(vtest), start_time=1000.0, first=0, last=59))  # 3 windows
    assert publisher.retained.reference_sent.wait(10)
    assert delivery.close(drain_timeout=30.0)
    windows = produced.summaries
    assert len(windows) == 3
    collector.wait_for("summary", 3)
    collector.close()
    ctype = {"msgpack": MSGPACK, "json": JSON}[encoding]
    raw = [(payload, c) for topic, payload, c in collector.raw if topic.endswith("/summary")]
    assert [c for _, c in raw] == [ctype] * 3
    assert all(payload.startswith(b"{") == (encoding == "json") for payload, _ in raw)
    for (payload, c), window in zip(raw, windows):
        decoded = codec.decode("summary", payload, c)
        assert isinstance(decoded, Summary)
        assert (decoded.device, decoded.boot_id) == ("cam-1", delivery.boot_id)
        assert msgspec.structs.replace(decoded, device="", boot_id="", seq=0, loss=None) == \
            window.to_wire(), "the same window, nothing lost on the way"
        rebuilt = WindowSummary.from_wire(decoded, ssd_reference)
        assert rebuilt.frames == window.frames and rebuilt.frames.monitored > 0
        for name, feature in window.numeric.items():
            assert rebuilt.numeric[name].hist == feature.hist, name
        assert rebuilt.categorical == window.categorical
    assert [w.start for w in windows] == [1000.0, 1002.0, 1004.0]
    assert collector.content_types("status") == {ctype}
    # the reference, once, retained: a collector that starts later still gets it
    assert collector.content_types("reference") == {ctype}
    assert len(collector.of("reference")) == 1
    late = Collector(broker.port, "edgewatch/v1/f1/cam-1/reference", client_id="late")
    [(_, payload, retained)] = late.wait_for_raw("reference", 1)
    late.close()
    assert retained
    reference = codec.decode("reference", payload)
    assert isinstance(reference, Reference) and reference.device == "cam-1"
    assert reference.id == ssd_reference.id
    assert ReferenceProfile.from_contract(reference).id == ssd_reference.id


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
    # hostile payloads: 10,000-deep nesting, a NUL character, a 2**64 id
    deep = 10_000
    collector.client.publish(base + "deep", b'{"x": ' + b"[" * deep + b"]" * deep + b"}", qos=1)
    collector.client.publish(base + "nul", b'{"id": "z1", "x": "a\\u0000b"}', qos=1)
    collector.client.publish(base + "big", b'{"id": 18446744073709551616}', qos=1)
    collector.client.publish(base + "ping", json.dumps({"id": "a2"}), qos=1)  # still there
    results = collector.wait_for("cmd_result", 7)
    delivery.close()
    collector.close()
    assert not [r for r in results if "rejected" in r], "every result decodes"
    by_outcome = sorted(results[:3], key=lambda r: (r.get("ok", False), r["command"]))
    transport = {"device", "boot_id", "seq"}
    assert {k: v for k, v in by_outcome[2].items() if k not in transport} == {
        "schema": "edgewatch.cmd_result/1", "command": "ping", "id": "a1", "ok": True,
        "pong": True}
    assert all(r["device"] == "cam-1" and r["boot_id"] == delivery.boot_id for r in results)
    errors = {r["command"]: r["error"] for r in results if not r.get("ok")}
    assert "not JSON" in errors["ping"] and "unknown command 'explode'" in errors["explode"]
    assert "a list holds a list" in errors["deep"] and "NUL character" in errors["nul"]
    assert "out of range" in errors["big"]
    assert [r.get("id") for r in results[3:6]] == [None, "z1", None]
    assert results[6]["ok"] and results[6]["id"] == "a2"
    assert collector.content_types("cmd_result") == {MSGPACK}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_both_protocol_versions_deliver(broker: MosquittoBroker, assets: Path, tmp_path: Path,
                                        ssd_engine: InferenceEngine,
                                        ssd_reference: ReferenceProfile, protocol: str) -> None:
    cfg = mqtt_config(assets, tmp_path, broker.port, protocol=protocol)
    collector = Collector(broker.port)
    delivery = delivery_for(cfg, ssd_engine, ssd_reference)
    for i in range(5):
        window = WindowSummary.empty(ssd_reference, 10.0 * i, 10.0 * i + 10.0)
        delivery.outbox.put("summary", msgspec.to_builtins(window.to_wire()), priority=0)
    delivery.start()
    got = collector.wait_for("summary", 5)
    assert [p["window"]["start"] for p in got] == [10.0 * i for i in range(5)]
    # MQTT 5 names the encoding; under 3.1.1 the collector recognises it from the bytes
    assert collector.content_types("summary") == ({MSGPACK} if protocol == "5" else {None})
    assert delivery.publisher is not None and delivery.publisher.wait_drained(5)
    assert delivery.outbox.stats().pending == 0
    delivery.close()
    collector.close()
