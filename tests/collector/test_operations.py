"""Operator functions: commands through a real mosquitto to a stand-in device (answering in
the compressed MessagePack encoding, as agents do by default), and alert listing from a real
SQLite collector store."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import pytest

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.commands import CommandRouter
from edgewatch.collector.command_exchange import (
    CommandNotDelivered,
    CommandTimeout,
    OperatorError,
    send_command,
)
from edgewatch.collector.operations import (
    alert_rows,
    command_target,
    format_alerts,
    list_alerts,
)
from edgewatch.collector.store import open_store
from edgewatch.config.agent import AlertsConfig, RuleConfig
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts import Alert, CommandResult
from edgewatch.errors import EdgewatchError
from support.broker import MosquittoBroker, free_port
from support.devices import DEVICE, FLEET, ROOT, StandInDevice


def temperature_engine(path: Path, emit: Any) -> AlertEngine:
    rules = [RuleConfig("temperature", "temperature", ">=", 85.0, "critical", 1, 1, 80.0)]
    return AlertEngine(AlertsConfig(rules=rules), AlertStore(path), emit)


def window(engine: AlertEngine, t: float, **celsius: float) -> None:
    engine.evaluate({"window": {"start": t, "end": t + 10.0},
                     "resources": {"temperatures_c": celsius}})


@pytest.fixture
def cfg(broker: MosquittoBroker) -> CollectorMqttConfig:
    return CollectorMqttConfig(host=broker.host, port=broker.port, topic_root=ROOT)


@pytest.fixture
def engine(tmp_path: Path) -> AlertEngine:
    eng = temperature_engine(tmp_path / "alerts.db", lambda _p: None)
    window(eng, 1000.0, cpu=91.0)
    return eng


@pytest.fixture
def device(broker: MosquittoBroker, engine: AlertEngine) -> Iterator[StandInDevice]:
    router = CommandRouter()
    engine.register(router)
    d = StandInDevice(broker, router)
    yield d
    d.close()


# --------------------------------------------------------------------------- commands


def test_send_command_returns_the_device_answer(cfg: CollectorMqttConfig,
                                                device: StandInDevice) -> None:
    started = time.monotonic()
    result = send_command(cfg, FLEET, DEVICE, "ping", {})
    assert time.monotonic() - started < 5
    assert isinstance(result, CommandResult) and result.command == "ping"
    assert result.ok is True and result.pong is True
    assert (result.device, result.boot_id, result.seq) == (DEVICE, "boot-1", 1)
    [(name, sent)] = device.commands
    assert name == "ping" and sent["schema"] == "edgewatch.cmd/1"
    assert sent["id"] == result.id and len(sent["id"]) == 36  # a uuid


def test_alert_commands_reach_the_engine(cfg: CollectorMqttConfig, device: StandInDevice,
                                         engine: AlertEngine) -> None:
    [alert] = engine.active.values()
    acked = send_command(cfg, FLEET, DEVICE, "ack", {"alert": alert.id})
    assert acked.ok and acked.state == "acknowledged" and alert.state == "acknowledged"
    listed = send_command(cfg, FLEET, DEVICE, "list", {})
    assert listed.alerts is not None and [a.id for a in listed.alerts] == [alert.id]
    refused = send_command(cfg, FLEET, DEVICE, "snooze", {"alert": alert.id, "seconds": -1})
    assert refused.ok is False and "seconds" in str(refused.error)  # returned, not raised


def test_arguments_cannot_override_schema_or_id(cfg: CollectorMqttConfig,
                                                device: StandInDevice) -> None:
    result = send_command(cfg, FLEET, DEVICE, "ping", {"id": "mine", "schema": "x/9"})
    assert result.ok and result.id != "mine"
    assert device.commands[0][1]["schema"] == "edgewatch.cmd/1"


def test_token(broker: MosquittoBroker, cfg: CollectorMqttConfig) -> None:
    d = StandInDevice(broker, CommandRouter(token="s3cret"))
    try:
        denied = send_command(cfg, FLEET, DEVICE, "ping", {})
        assert denied.ok is False and "unauthorised" in str(denied.error)
        assert send_command(cfg, FLEET, DEVICE, "ping", {}, token="s3cret").ok is True
        assert d.commands[1][1]["token"] == "s3cret"
    finally:
        d.close()


def test_other_answers_on_the_topic_are_ignored_and_clients_do_not_collide(
        broker: MosquittoBroker, cfg: CollectorMqttConfig) -> None:
    d = StandInDevice(broker, CommandRouter(), noise=True)
    results: list[CommandResult] = []
    try:
        threads = [threading.Thread(target=lambda: results.append(
            send_command(cfg, FLEET, DEVICE, "ping", {}))) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
    finally:
        d.close()
    assert len(results) == 3 and all(r.ok and r.pong for r in results)
    assert len({r.id for r in results}) == 3
    assert "someone-else" not in {r.id for r in results}


def test_nobody_subscribed_means_not_delivered_at_once(cfg: CollectorMqttConfig) -> None:
    started = time.monotonic()
    with pytest.raises(CommandNotDelivered, match="not delivered") as info:
        send_command(cfg, FLEET, DEVICE, "ping", {}, timeout_s=10.0)
    assert time.monotonic() - started < 5
    assert isinstance(info.value, CommandTimeout) and isinstance(info.value, EdgewatchError)


def test_offline_device_times_out(broker: MosquittoBroker, cfg: CollectorMqttConfig) -> None:
    collector = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="collector-like",
                            protocol=mqtt.MQTTv5)  # reads everything, answers nothing
    subscribed = threading.Event()
    collector.on_connect = lambda c, *_: c.subscribe(f"{ROOT}/+/+/#", 1)
    collector.on_subscribe = lambda *_: subscribed.set()
    collector.connect(broker.host, broker.port)
    collector.loop_start()
    try:
        assert subscribed.wait(5)
        started = time.monotonic()
        with pytest.raises(CommandTimeout) as info:
            send_command(cfg, FLEET, DEVICE, "ping", {}, timeout_s=1.0)
        assert 0.9 < time.monotonic() - started < 4
        message = str(info.value)
        assert "no answer within 1 s" in message and "offline" in message
        assert "not delivered" in message and "persistent" in message
        assert not isinstance(info.value, CommandNotDelivered)
    finally:
        collector.disconnect()
        collector.loop_stop()


def test_unreachable_broker_and_bad_names() -> None:
    cfg = CollectorMqttConfig(host="127.0.0.1", port=free_port())
    with pytest.raises(OperatorError, match="cannot reach the broker"):
        send_command(cfg, FLEET, DEVICE, "ping", {}, timeout_s=2.0)
    with pytest.raises(OperatorError, match="device"):
        send_command(cfg, FLEET, "cam/+", "ping", {})
    with pytest.raises(OperatorError, match="command name"):
        send_command(cfg, FLEET, DEVICE, "cmd/#", {})
    with pytest.raises(OperatorError, match="not plain JSON"):
        send_command(cfg, FLEET, DEVICE, "ping", {"x": float("nan")})


# --------------------------------------------------------------------------- alerts


@pytest.fixture
def store_with_alerts(tmp_path: Path) -> Iterator[Any]:
    """cam-1: a cpu alert that fired then resolved, and a firing gpu alert; cam-2: an
    acknowledged critical alert. Ingested in a real SQLite store."""
    store = open_store(f"sqlite:///{tmp_path / 'collector.db'}")
    for n, name in enumerate(["cam-1", "cam-2"]):
        sent: list[Alert] = []
        eng = temperature_engine(tmp_path / f"{name}.db", sent.append)
        if name == "cam-1":
            window(eng, 1000.0, cpu=91.0, gpu=70.0)
            window(eng, 1010.0, cpu=70.0, gpu=95.0)
        else:
            window(eng, 1020.0, cpu=99.0)
            router = CommandRouter()
            eng.register(router)
            alert_id = sent[-1].id
            assert router("ack", json.dumps({"alert": alert_id}).encode()).ok
        # received in reverse order (two collectors, a backlog): the seq decides
        items = [("alert", FLEET, name,
                  msgspec.structs.replace(p, device=name, boot_id="b", seq=i + 1),
                  2000.0 + 10 * n - i) for i, p in enumerate(sent)]
        assert store.ingest_many(items) == [True] * len(items)
    yield store
    store.close()


def test_list_alerts_latest_state_per_alert(store_with_alerts: Any) -> None:
    active = list_alerts(store_with_alerts, None, True)
    assert [(a.device, a.subject, a.state) for a in active] == [
        ("cam-2", "cpu", "acknowledged"), ("cam-1", "gpu", "firing")]  # newest first
    everything = list_alerts(store_with_alerts, None, False)
    assert len(everything) == 3
    resolved = [a for a in everything if a.state == "resolved"]
    assert [(a.device, a.subject, a.seq) for a in resolved] == [("cam-1", "cpu", 2)]
    assert [a.subject for a in list_alerts(store_with_alerts, "cam-1", True)] == ["gpu"]
    assert list_alerts(store_with_alerts, "cam-9", False) == []


def test_format_alerts_is_a_readable_table(store_with_alerts: Any) -> None:
    rows = list_alerts(store_with_alerts, None, False)
    text = format_alerts(rows)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["severity", "state", "device", "rule", "subject"]
    assert set(lines[1]) == {"-"}
    assert len(lines) == 2 + 3 + 1
    assert lines[-1] == "3 alerts (1 acknowledged, 1 firing, 1 resolved)"
    for row in rows:
        assert row.id in text
    assert "1970-01-01 00:16:40" in text  # since of the cam-1 alerts, UTC
    assert "< 85.0" in text and "95" in text
    assert all(len(line) < 250 for line in lines)  # long sentences are cut
    assert format_alerts([]) == "no alerts"


def test_alert_rows_are_the_messages_with_every_field(store_with_alerts: Any) -> None:
    alerts = list_alerts(store_with_alerts, None, False)
    rows = json.loads(json.dumps(alert_rows(alerts)))  # plain JSON, for --json
    extra = ("stale", "offline_since")  # the collector's view: the device is offline
    assert [msgspec.convert({k: v for k, v in r.items() if k not in extra}, Alert)
            for r in rows] == alerts
    assert all(set(r) == {"schema", *extra, *Alert.__struct_fields__} for r in rows)
    assert {r["snoozed_until"] for r in rows} == {None}  # defaults are spelled out
    assert {(r["stale"], r["offline_since"]) for r in rows} == {(False, None)}


def test_an_alert_row_that_does_not_decode_is_left_out(store_with_alerts: Any,
                                                       tmp_path: Path) -> None:
    stored = store_with_alerts.alerts()
    with sqlite3.connect(tmp_path / "collector.db") as conn:  # not written by the ingest
        conn.execute(
            "INSERT INTO messages (device, boot_id, seq, kind, fleet, received, historical, "
            "alert_id, alert_state, payload) VALUES ('cam-1', 'b', 99, 'alert', 'f1', 3000, "
            "FALSE, 'x', 'firing', '{\"schema\": \"edgewatch.alert/1\", \"id\": \"x\"}')")
    conn.close()
    assert store_with_alerts.count("alert") == len(stored) + 1
    assert store_with_alerts.alerts() == stored  # the row is left out, the others read
    assert [a.subject for a in list_alerts(store_with_alerts, "cam-1", True)] == ["gpu"]


def test_command_target_from_the_store(store_with_alerts: Any) -> None:
    [gpu] = list_alerts(store_with_alerts, "cam-1", True)
    assert command_target(store_with_alerts, alert=gpu.id) == (FLEET, "cam-1")
    assert command_target(store_with_alerts, "cam-2") == (FLEET, "cam-2")
    assert command_target(store_with_alerts, "cam-2", alert=gpu.id) == (FLEET, "cam-2")
    [cpu] = [a for a in list_alerts(store_with_alerts, "cam-1", False)
             if a.state == "resolved"]
    with pytest.raises(OperatorError, match="no active alert"):
        command_target(store_with_alerts, alert=cpu.id)  # resolved: nothing to act on
    with pytest.raises(OperatorError, match="does not know device 'cam-9'"):
        command_target(store_with_alerts, "cam-9")
    with pytest.raises(OperatorError, match="name the device"):
        command_target(store_with_alerts)
