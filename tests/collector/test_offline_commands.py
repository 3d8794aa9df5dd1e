"""Offline devices: the collector does not subscribe to command topics, so the broker says
at once when nobody can receive a command; an operator's command to an offline device is
queued in the store and delivered by the collector when the device is back; the active
alerts of an offline device are listed as stale.

Real parts: a Mosquitto broker, the real collector service (ingest, store, command relay),
a device of real agent parts (outbox, publisher, alert engine, command router:
support.alert_device), the ``edgewatch alerts`` CLI, SQLite and PostgreSQL stores."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewatch.agent.commands import CommandRouter
from edgewatch.cli import main
from edgewatch.collector.command_exchange import CommandNotDelivered, send_command
from edgewatch.collector.commands import command_payload
from edgewatch.collector.ingest import Ingestor
from edgewatch.collector.service import CollectorService
from edgewatch.collector.store import open_store
from edgewatch.config.collector import (
    CollectorMqttConfig,
    StoreConfig,
    load_collector_config,
)
from support.alert_device import AgentDevice
from support.broker import MosquittoBroker
from support.waiting import wait_until

TOKEN = "s3cret-token"




def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, out


@pytest.fixture
def config(broker: MosquittoBroker, store_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                    f'client_id = "collector-test"\n[store]\nurl = "{store_url}"\n'
                    "[http]\nport = 0\n")
    return path


@pytest.fixture
def collector(config: Path) -> Iterator[CollectorService]:
    service = CollectorService(load_collector_config(config))
    service.start()
    try:
        assert service.ingestor.subscribed.wait(15), "the collector did not subscribe"
        yield service
    finally:
        service.close()


def test_a_command_nobody_can_receive_is_reported_at_once_while_the_collector_listens(
        broker: MosquittoBroker, tmp_path: Path) -> None:
    """The collector's subscriptions leave command topics alone: the broker answers the
    operator's PUBLISH with reason 16 (no matching subscribers) instead of a 10-s wait."""
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        cfg = CollectorMqttConfig(host=broker.host, port=broker.port, client_id="c-16")
        ing = Ingestor(cfg, StoreConfig(), store)
        ing.start()
        try:
            assert ing.subscribed.wait(15)
            started = time.monotonic()
            with pytest.raises(CommandNotDelivered, match="nobody is subscribed"):
                send_command(cfg, "f1", "cam-9", "ack", {"alert": "x"}, timeout_s=10.0)
            assert time.monotonic() - started < 3.0
        finally:
            ing.stop()


def test_shared_subscriptions_leave_command_topics_alone_too(
        broker: MosquittoBroker, tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        cfg = CollectorMqttConfig(host=broker.host, port=broker.port, client_id="c-shared",
                                  shared_group="collectors")
        ing = Ingestor(cfg, StoreConfig(), store)
        ing.start()
        try:
            assert ing.subscribed.wait(15)
            with pytest.raises(CommandNotDelivered):
                send_command(cfg, "f1", "cam-9", "ping", {}, timeout_s=10.0)
        finally:
            ing.stop()


def test_an_ack_to_an_offline_device_is_queued_then_applied_when_it_is_back(
        broker: MosquittoBroker, collector: CollectorService, config: Path, store_url: str,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    device = AgentDevice(broker, tmp_path / "cam-1", token=TOKEN).online()
    try:
        device.window(91.0)  # fires
        with open_store(store_url) as store:
            fired = wait_until(lambda: [a for a in store.alerts("cam-1")], 15,
                               "the alert stored")[0]
            assert fired.state == "firing"
            device.offline()
            wait_until(lambda: not store.device("cam-1").online, 15,  # type: ignore[union-attr]
                       "the device's offline status stored")

        # the active alert of an offline device is stale, in the table and in JSON
        code, out = cli(capsys, "alerts", "list", "--config", str(config))
        assert code == 0 and "firing (stale: device offline since " in out
        assert "1 stale" in out
        code, out = cli(capsys, "alerts", "list", "--config", str(config), "--json")
        [row] = json.loads(out)
        assert row["stale"] is True and row["state"] == "firing"
        assert isinstance(row["offline_since"], float)

        # ack: queued at once (the broker says nobody listens), exit 0
        started = time.monotonic()
        code, out = cli(capsys, "alerts", "ack", fired.id, "--config", str(config),
                        "--token", TOKEN, "--timeout", "10")
        assert time.monotonic() - started < 5.0
        assert code == 0, out
        assert out.startswith("queued: cam-1 is offline since ")
        assert "delivered when it reconnects (edgewatch alerts commands to see" in out
        code, out = cli(capsys, "alerts", "commands", "--config", str(config), "--json")
        [queued] = json.loads(out)
        assert (queued["state"], queued["device"], queued["name"], queued["args"]) == (
            "queued", "cam-1", "ack", {"alert": fired.id})
        assert "token" not in queued and TOKEN not in out

        # back online: the collector delivers it, the device applies it and answers
        device.online()
        with open_store(store_url) as store:
            done = wait_until(lambda: [c for c in store.commands("cam-1")
                                       if c.state == "answered"], 20, "the command answered")
        assert done[0].result is not None and done[0].result["ok"] is True
        assert done[0].result["state"] == "acknowledged"
        code, out = cli(capsys, "alerts", "commands", "--config", str(config))
        assert "answered" in out and "ok" in out and fired.id in out
        with open_store(store_url) as store:
            wait_until(lambda: [a for a in store.alerts("cam-1")
                                if a.state == "acknowledged"], 15,
                       "the acknowledged state stored")
        code, out = cli(capsys, "alerts", "list", "--config", str(config), "--json")
        [row] = json.loads(out)
        assert (row["state"], row["stale"], row["offline_since"]) == (
            "acknowledged", False, None)
        code, out = cli(capsys, "alerts", "list", "--config", str(config))
        assert "stale" not in out and "acknowledged" in out
    finally:
        device.close()


def test_a_queued_command_for_an_alert_that_resolved_meanwhile_is_answered_harmlessly(
        broker: MosquittoBroker, collector: CollectorService, config: Path, store_url: str,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    device = AgentDevice(broker, tmp_path / "cam-1").online()
    try:
        device.window(91.0)
        with open_store(store_url) as store:
            fired = wait_until(lambda: store.alerts("cam-1"), 15, "the alert stored")[0]
            device.offline()
            wait_until(lambda: not store.device("cam-1").online, 15,  # type: ignore[union-attr]
                       "offline")
        code, out = cli(capsys, "alerts", "ack", fired.id, "--config", str(config))
        assert code == 0 and out.startswith("queued:")
        device.window(70.0)  # resolves while the device is away
        device.online()
        with open_store(store_url) as store:
            [done] = wait_until(lambda: [c for c in store.commands("cam-1")
                                         if c.state == "answered"], 20, "answered")
        assert done.result is not None and done.result["ok"] is False
        assert "no active alert" in done.result["error"]
    finally:
        device.close()


def test_old_queued_commands_expire(broker: MosquittoBroker, collector: CollectorService,
                                    config: Path, store_url: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from edgewatch.collector.store import QueuedCommand

    with open_store(store_url) as store:
        store.queue_command(QueuedCommand(id="old-1", device="cam-1", fleet="f1", name="ack",
                                          args={"alert": "a"},
                                          created=time.time() - 8 * 86400))
    code, out = cli(capsys, "alerts", "commands", "--config", str(config), "--json")
    assert code == 0 and [c["state"] for c in json.loads(out)] == ["expired"]


def test_a_command_delivered_twice_is_carried_out_once() -> None:
    calls: list[dict[str, Any]] = []
    router = CommandRouter()
    router.register("count", lambda args: calls.append(args) or {"alert": str(len(calls))})
    payload = json.dumps({"id": "c-1", "n": 1}).encode()
    first = router("count", payload)
    again = router("count", payload)
    assert first.ok and again == first and len(calls) == 1
    assert router("count", json.dumps({"id": "c-2"}).encode()).ok and len(calls) == 2


def test_a_queued_command_is_published_as_the_operator_sent_it() -> None:
    """The relay re-publishes a queued command from its stored parts: same id and token,
    arguments that cannot pass for the reserved fields."""
    raw = command_payload("c-9", {"alert": "a-1", "id": "other", "token": "forged"}, TOKEN)
    assert json.loads(raw) == {"schema": "edgewatch.cmd/1", "id": "c-9", "alert": "a-1",
                               "token": TOKEN}
    assert "token" not in json.loads(command_payload("c-9", {"alert": "a-1"}, ""))
