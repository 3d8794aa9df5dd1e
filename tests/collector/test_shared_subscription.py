"""Several collector instances on one fleet: MQTT 5 shared subscriptions
(``mqtt.shared_group``) split the devices' messages between them, one PostgreSQL store
keeps each message once, an alert is routed once, a queued command is delivered once, and
an instance that leaves the group leaves the others taking everything.

Real parts: a Mosquitto broker, two (or three) real collector services (ingest, store,
command relay, alert routing) in this process, a real PostgreSQL database, a real HTTP
webhook receiving what the alert routing sends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgewatch.collector.mqtt_client import subscriptions
from edgewatch.collector.service import CollectorService
from edgewatch.collector.store import QueuedCommand, open_store
from edgewatch.config.collector import CollectorMqttConfig, parse_collector_config
from support.broker import MosquittoBroker
from support.paths import DATA
from support.waiting import wait_until
from support.webhook import WebhookReceiver

EXAMPLE = json.loads((DATA / "summary-example.json").read_text())
ROOT = "edgewatch/v1"
FLEET = "depot"


def test_the_group_prefixes_every_device_leaf_and_nothing_else() -> None:
    plain = subscriptions(CollectorMqttConfig())
    shared = subscriptions(CollectorMqttConfig(shared_group="collectors"))
    assert shared == [f"$share/collectors/{t}" for t in plain]
    assert not any("cmd/" in t for t in shared)


class Instances:
    """Collector services of one shared group on one broker and one PostgreSQL store."""

    def __init__(self, broker: MosquittoBroker, pg_url: str, hook_url: str) -> None:
        self.broker = broker
        self.pg_url = pg_url
        self.hook_url = hook_url
        self.running: list[CollectorService] = []

    def start(self, name: str, **mqtt_keys: Any) -> CollectorService:
        cfg = parse_collector_config({
            "mqtt": {"host": self.broker.host, "port": self.broker.port,
                     "client_id": f"collector-{name}", "shared_group": "collectors",
                     **mqtt_keys},
            "store": {"url": self.pg_url, "batch_wait_ms": 5.0},
            "http": {"port": 0},
            "alerting": {"webhook_url": self.hook_url},
            "advisory": {"interval_s": 0.0},
            "retention": {"interval_s": 0.0},
        })
        service = CollectorService(cfg)
        service.start()
        assert service.ingestor.subscribed.wait(15), f"collector-{name} did not subscribe"
        self.running.append(service)
        return service

    def stop(self, service: CollectorService) -> None:
        self.running.remove(service)
        service.close()

    def close(self) -> None:
        for service in list(self.running):
            self.stop(service)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def group(broker: MosquittoBroker, pg_url: str,
          hook: WebhookReceiver) -> Iterator[Instances]:
    instances = Instances(broker, pg_url, hook.url)
    try:
        yield instances
    finally:
        instances.close()


class Device:
    """Publishes as devices do (QoS 1, JSON): on behalf of any device id of the fleet."""

    def __init__(self, broker: MosquittoBroker, client_id: str = "devices") -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.props = Properties(PacketTypes.PUBLISH)
        self.props.ContentType = "application/json"

    def send(self, device: str, leaf: str, payload: dict[str, Any],
             retain: bool = False) -> None:
        info = self.client.publish(f"{ROOT}/{FLEET}/{device}/{leaf}",
                                   json.dumps(payload).encode(), qos=1, retain=retain,
                                   properties=self.props)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def devices(broker: MosquittoBroker) -> Iterator[Device]:
    publisher = Device(broker)
    try:
        yield publisher
    finally:
        publisher.close()


def summary(device: str, seq: int) -> dict[str, Any]:
    payload = dict(EXAMPLE, device=device, boot_id="boot-1", seq=seq)
    payload["window"] = {"start": 1000.0 + 10 * seq, "end": 1010.0 + 10 * seq, "windows": 1}
    return payload


def alert(device: str, seq: int) -> dict[str, Any]:
    return {"schema": "edgewatch.alert/1", "device": device, "boot_id": "boot-1", "seq": seq,
            "id": "drift-brightness", "rule": "drift", "state": "firing",
            "severity": "critical", "message": "brightness drifted",
            "window": {"start": 1000.0, "end": 1010.0}, "since": 1010.0, "updated": 1010.0}


def birth(device: str) -> dict[str, Any]:
    return {"schema": "edgewatch.status/1", "state": "online", "device": device,
            "boot_id": "boot-1", "time": 1000.0}


def send_summaries(devices: Device, n_devices: int, seqs: range) -> None:
    for seq in seqs:
        for d in range(n_devices):
            devices.send(f"cam-{d:02d}", "summary", summary(f"cam-{d:02d}", seq))


def stored(service: CollectorService) -> int:
    return service.ingestor.stats.stored["summary"]


def test_two_instances_split_the_fleet_and_each_summary_is_stored_once(
        group: Instances, devices: Device, pg_url: str) -> None:
    a, b = group.start("a"), group.start("b")
    send_summaries(devices, 20, range(10))
    send_summaries(devices, 20, range(5))  # sent again (a device's outbox replayed)
    with open_store(pg_url) as store:
        wait_until(lambda: stored(a) + stored(b) == 200, 30, "200 summaries stored")
        wait_until(lambda: a.ingestor.stats.duplicates + b.ingestor.stats.duplicates == 100,
                   30, "every copy seen as one")
        keys = store.keys("summary")
        assert len(keys) == len(set(keys)) == store.count("summary") == 200
        assert all(d.summaries == 10 and d.gaps == 0 for d in store.devices())
    assert stored(a) > 0 and stored(b) > 0  # each took a share
    assert a.ingestor.stats.received + b.ingestor.stats.received == 300  # each message once


def test_an_alert_is_routed_once_even_when_both_instances_receive_it(
        group: Instances, devices: Device, hook: WebhookReceiver, pg_url: str) -> None:
    a, b = group.start("a"), group.start("b")
    for _ in range(4):  # the same message, again and again: round robin gives it to both
        devices.send("cam-01", "alert", alert("cam-01", 7))
    wait_until(lambda: a.ingestor.stats.received + b.ingestor.stats.received == 4, 15,
               "the alert received four times")
    assert a.ingestor.stats.received > 0 and b.ingestor.stats.received > 0
    wait_until(lambda: a.ingestor.stats.duplicates + b.ingestor.stats.duplicates == 3, 15,
               "three duplicates")
    wait_until(lambda: hook.received, 15, "the alert routed")
    with open_store(pg_url) as store:
        assert [x.id for x in store.alerts("cam-01")] == ["drift-brightness"]
    group.close()  # the routers send what was submitted on close: nothing more may come
    assert len(hook.received) == 1


def command_messages(broker: MosquittoBroker, got: list[bytes]) -> mqtt.Client:
    """A device's command subscription: what reaches it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cam-cmd",
                         protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, msg: got.append(msg.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(f"{ROOT}/{FLEET}/cam-05/cmd/#", qos=1)
    client.loop_start()
    return client


def test_a_queued_command_is_delivered_once_by_the_group(
        broker: MosquittoBroker, group: Instances, devices: Device, pg_url: str) -> None:
    """Mosquitto sends a retained birth to every instance that subscribes; a live birth
    goes to one. The command goes out once, on the live birth."""
    with open_store(pg_url) as store:
        store.queue_command(QueuedCommand(id="c-2", device="cam-05", fleet=FLEET,
                                          name="ping", args={}, created=time.time()))
    got: list[bytes] = []
    listener = command_messages(broker, got)
    try:
        devices.send("cam-05", "status", birth("cam-05"), retain=True)
        a, b = group.start("a"), group.start("b")
        wait_until(lambda: a.ingestor.stats.received and b.ingestor.stats.received, 15,
                   "the retained birth reaching both instances")
        # once each instance has stored a later message, it has handled the retained birth
        send_summaries(devices, 4, range(1))
        wait_until(lambda: stored(a) and stored(b), 15, "a summary stored by each")
        assert a.commands.sent == b.commands.sent == 0  # retained births: not acted upon
        devices.send("cam-05", "status", dict(birth("cam-05"), time=1100.0))  # live
        wait_until(lambda: got, 15, "the queued command delivered")
        with open_store(pg_url) as store:
            [sent] = [c for c in store.commands("cam-05")]
            assert sent.state == "sent"
        # a third instance joining later gets the retained birth: it sends nothing again
        c = group.start("c")
        wait_until(lambda: c.ingestor.stats.received >= 1, 15, "the retained birth")
        devices.send("cam-05", "cmd_result", {
            "schema": "edgewatch.cmd_result/1", "device": "cam-05", "boot_id": "boot-1",
            "seq": 3, "id": "c-2", "command": "ping", "ok": True, "pong": True})
        with open_store(pg_url) as store:
            wait_until(lambda: store.commands("cam-05")[0].state == "answered", 15,
                       "the answer recorded")
        assert a.commands.sent + b.commands.sent + c.commands.sent == 1
        assert [json.loads(p)["id"] for p in got] == ["c-2"]
    finally:
        listener.disconnect()
        listener.loop_stop()


def test_an_instance_that_leaves_the_group_leaves_the_other_taking_everything(
        group: Instances, devices: Device, pg_url: str) -> None:
    """``session_expiry_s = 0``: the instance's session ends with its connection, so the
    broker gives its share to the others from then on (how an instance is retired)."""
    a, b = group.start("a", session_expiry_s=0), group.start("b")
    send_summaries(devices, 10, range(10))
    wait_until(lambda: stored(a) + stored(b) == 100, 30, "100 stored")
    assert stored(a) > 0 and stored(b) > 0
    group.stop(a)
    before = b.ingestor.stats.received
    send_summaries(devices, 10, range(10, 20))
    wait_until(lambda: stored(b) + stored(a) == 200, 30, "the next 100 stored by b")
    assert b.ingestor.stats.received - before == 100
    with open_store(pg_url) as store:
        keys = store.keys("summary")
        assert len(keys) == len(set(keys)) == 200


def test_a_stopped_instance_keeps_its_share_waiting_at_the_broker_until_it_returns(
        group: Instances, devices: Device, pg_url: str) -> None:
    """The default (a persistent session): nothing is lost while an instance restarts;
    the broker holds its share of what was sent meanwhile and delivers it on its return."""
    a, b = group.start("a"), group.start("b")
    send_summaries(devices, 10, range(5))
    wait_until(lambda: stored(a) + stored(b) == 50, 30, "50 stored")
    group.stop(a)
    send_summaries(devices, 10, range(5, 15))
    again = group.start("a")
    with open_store(pg_url) as store:
        wait_until(lambda: store.count("summary") == 150, 30, "150 in the store")
        keys = store.keys("summary")
        assert len(keys) == len(set(keys)) == 150
    assert stored(again) > 0  # its share of what was sent while it was away
    assert b.ingestor.stats.duplicates == again.ingestor.stats.duplicates == 0


def test_an_instance_that_saw_a_device_go_offline_routes_its_alerts_once_it_is_back(
        group: Instances, devices: Device, hook: WebhookReceiver) -> None:
    a, b = group.start("a"), group.start("b")
    offline = {"schema": "edgewatch.status/1", "state": "offline", "device": "cam-02",
               "boot_id": "boot-1", "reason": "connection lost"}  # a last will: no time
    devices.send("cam-02", "status", offline)  # to one instance
    back = time.time() + 1.0
    devices.send("cam-02", "status", dict(birth("cam-02"), time=back))  # to the other
    for seq in (1, 2):  # one to each: both alerts are new and live
        devices.send("cam-02", "alert", dict(alert("cam-02", seq), id=f"drift-{seq}",
                                             updated=back + seq))
    wait_until(lambda: a.ingestor.stats.stored["alert"] + b.ingestor.stats.stored["alert"]
               == 2, 15, "both alerts stored")
    group.close()
    assert len(hook.received) == 2


def test_an_alert_made_before_its_device_went_offline_is_not_routed(
        group: Instances, devices: Device, hook: WebhookReceiver) -> None:
    """Whichever instance gets the alert, the device's offline status is in the store."""
    a, b = group.start("a"), group.start("b")
    made = time.time()
    devices.send("cam-03", "status", {"schema": "edgewatch.status/1", "state": "offline",
                                      "device": "cam-03", "boot_id": "boot-1",
                                      "reason": "connection lost"})
    wait_until(lambda: a.ingestor.stats.stored["status"] + b.ingestor.stats.stored["status"],
               15, "the last will stored")
    for seq in (1, 2):  # one to each instance
        devices.send("cam-03", "alert", dict(alert("cam-03", seq), id=f"drift-{seq}",
                                             updated=made))
    wait_until(lambda: a.ingestor.stats.stored["alert"] + b.ingestor.stats.stored["alert"]
               == 2, 15, "both alerts stored")
    group.close()
    assert hook.received == []
