"""Decommissioning a device on real SQLite files, a real PostgreSQL and a real Mosquitto:
it leaves the fleet views, the metrics and the active alerts, its retained messages leave
the broker, a replayed retained status does not bring it back, a live message does. Also
``edgewatch fleet prune`` from the command line."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from prometheus_client import generate_latest

from edgewatch.cli.main import main
from edgewatch.clock import ManualClock
from edgewatch.collector.decommission import retained_topics
from edgewatch.collector.metrics import make_registry
from edgewatch.collector.operations import list_alerts
from edgewatch.collector.store import Item, Store, StoreError, open_store
from edgewatch.contracts import codec
from edgewatch.contracts.alert import Alert, Span
from edgewatch.contracts.status import Manifest, Status
from edgewatch.contracts.summary import Summary
from support.broker import MosquittoBroker
from support.paths import DATA

EXAMPLE = json.loads((DATA / "summary-example.json").read_text())
T0 = 1767225600.0
ROOT = "edgewatch/v1"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as s:
        yield s


def summary(device: str, seq: int, start: float = T0) -> Summary:
    p: dict[str, Any] = copy.deepcopy(EXAMPLE)
    p["window"] = {"start": start + 60.0 * seq, "end": start + 60.0 * (seq + 1),
                   "windows": 1}
    p.update(device=device, boot_id="b1", seq=seq)
    decoded = codec.decode("summary", json.dumps(p).encode())
    assert isinstance(decoded, Summary)
    return decoded


def alert(device: str, seq: int, alert_id: str, state: str) -> Alert:
    return Alert(id=alert_id, rule="temperature", state=state,  # type: ignore[arg-type]
                 severity="warning", window=Span(T0, T0 + 10.0), since=T0 + seq,
                 updated=T0 + seq, device=device, boot_id="b1", seq=seq,
                 message="too hot")


def birth(device: str, when: float = T0) -> Status:
    manifest = Manifest(device=device, fleet="f", boot_id="b1", started=when,
                        model_name="m", model_sha256="ab" * 32, adapter="ssd",
                        reference_id="r1", config_sha256="cd" * 32)
    return Status(state="online", device=device, boot_id="b1", time=when, manifest=manifest)


def populate(store: Store) -> None:
    items: list[Any] = []
    for device in ("cam-1", "cam-2"):
        items += [("status", "f", device, birth(device), T0),
                  ("summary", "f", device, summary(device, 1), T0 + 100),
                  ("summary", "f", device, summary(device, 2), T0 + 200),
                  ("alert", "f", device, alert(device, 3, "a", "firing"), T0 + 300),
                  ("alert", "f", device, alert(device, 4, "b", "firing"), T0 + 300),
                  ("alert", "f", device, alert(device, 5, "b", "resolved"), T0 + 400)]
    items.append(("status", "f", "cam-1", Status(state="offline", device="cam-1",
                                                 boot_id="b1", time=T0 + 500), T0 + 500))
    store.ingest_many(items)


def exported(store: Store) -> str:
    registry = make_registry(store, None, ManualClock(T0 + 600), 300.0,
                             process_metrics=False)
    return generate_latest(registry).decode("utf-8")


def test_a_decommissioned_device_leaves_the_fleet(store: Store,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    populate(store)
    assert 'device="cam-1"' in exported(store)
    assert {(a.device, a.id) for a in list_alerts(store)} == {("cam-1", "a"), ("cam-2", "a")}

    done = store.decommission("cam-1", T0 + 1000)
    assert (done.fleet, done.alerts_closed, done.closed, done.was_known) == (
        "f", 1, ["a"], True)
    assert [d.device for d in store.devices()] == ["cam-2"]
    assert store.device("cam-1") is None
    assert 'device="cam-1"' not in exported(store)  # edgewatch_device_online is gone
    assert {(a.device, a.id) for a in list_alerts(store)} == {("cam-2", "a")}
    closed = {a.id: a for a in list_alerts(store, "cam-1", active_only=False)}
    assert closed["a"].state == "resolved" and "decommissioned" in closed["a"].message
    assert len(store.summaries("cam-1")) == 2  # history is kept without --purge

    # the broker replaying its retained birth does not bring it back ...
    replay = Item("status", "f", "cam-1", birth("cam-1", T0 + 2000), T0 + 2000,
                  retained=True)
    assert store.ingest_many([replay]) == [False]
    assert [d.device for d in store.devices()] == ["cam-2"]
    # ... a live message does (logged)
    with caplog.at_level(logging.WARNING):
        assert store.ingest("summary", "f", "cam-1", summary("cam-1", 9), T0 + 3000)
    assert [d.device for d in store.devices()] == ["cam-1", "cam-2"]
    assert "re-admitted" in caplog.text
    assert store.ingest_many([replay]) == [True]  # back in the fleet: births count again


def test_purge_deletes_the_history(store: Store) -> None:
    populate(store)
    before = store.count()
    done = store.decommission("cam-1", T0 + 1000, purge=True)
    assert done.messages_deleted == 5 and store.count() == before - 5
    assert store.summaries("cam-1") == [] and store.alerts("cam-1") == []
    assert store.device("cam-2") is not None and len(store.summaries("cam-2")) == 2
    again = store.decommission("cam-1", T0 + 1100)  # idempotent
    assert (again.was_known, again.fleet) == (False, "f")
    with pytest.raises(StoreError, match="unknown device"):
        store.decommission("cam-9", T0)


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
                    f'[store]\nurl = "sqlite:///{tmp_path / "fleet.db"}"\n')
    return path


def _retained(port: int, wait_s: float = 1.5) -> dict[str, bytes]:
    """The retained messages under the root, as a new subscriber is handed them."""
    got: dict[str, bytes] = {}
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="retained-check",
                         protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(f"{ROOT}/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, m: got.__setitem__(m.topic, m.payload) if m.retain \
        else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        time.sleep(wait_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def _publish_retained(port: int, messages: dict[str, bytes]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="device-sim",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages.items():
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_command_clears_the_retained_messages(tmp_path: Path, broker: MosquittoBroker,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, broker.port)
    topics = {t: codec.encode(birth(d), "json") if t.endswith("status") else b"ref"
              for d in ("cam-1", "cam-2") for t in retained_topics(ROOT, "f", d)}
    _publish_retained(broker.port, topics)
    assert set(_retained(broker.port)) == set(topics)
    with open_store(f"sqlite:///{tmp_path / 'fleet.db'}") as s:
        populate(s)

    assert main(["fleet", "decommission", "cam-1", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "decommissioned" in out and "1 active alert(s) closed" in out
    left = _retained(broker.port)
    assert set(left) == set(retained_topics(ROOT, "f", "cam-2"))  # cam-1's are gone
    with open_store(f"sqlite:///{tmp_path / 'fleet.db'}") as s:
        assert [d.device for d in s.devices()] == ["cam-2"]

    assert main(["fleet", "decommission", "cam-1", "--config", str(cfg), "--purge"]) == 0
    assert "5 stored message(s) deleted" in capsys.readouterr().out


def test_the_command_fails_without_a_broker(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, 1)  # nothing listens on port 1
    with open_store(f"sqlite:///{tmp_path / 'fleet.db'}") as s:
        populate(s)
    assert main(["fleet", "decommission", "cam-1", "--config", str(cfg),
                 "--timeout", "2"]) == 1
    assert "run the command again" in capsys.readouterr().err
    with open_store(f"sqlite:///{tmp_path / 'fleet.db'}") as s:
        assert [d.device for d in s.devices()] == ["cam-2"]  # the store step is done


def test_fleet_prune_from_the_command_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, 1883)
    start = (time.time() // 86400 - 30) * 86400  # a day a month ago: daily rollups
    with open_store(f"sqlite:///{tmp_path / 'fleet.db'}") as s:
        s.ingest_many([("summary", "f", "cam-1", summary("cam-1", i, start), start)
                       for i in range(1, 11)])
    assert main(["fleet", "prune", "--config", str(cfg), "--dry-run"]) == 0
    assert "would prune 1 device(s): 10 summaries merged into 1 hourly" in \
        capsys.readouterr().out
    assert main(["fleet", "prune", "--config", str(cfg)]) == 0
    assert "pruned 1 device(s)" in capsys.readouterr().out
    with open_store(f"sqlite:///{tmp_path / 'fleet.db'}") as s:
        [rolled] = s.summaries("cam-1")
        assert rolled.window.windows == 10
