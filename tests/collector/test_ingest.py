"""The collector's ingest: hostile payloads through a real Mosquitto broker are counted and
dropped, a message the store refuses is quarantined while the rest of its batch is stored,
and the operator lists and purges the quarantine through the CLI. Stores are real SQLite
files and a real PostgreSQL database (the fixtures of conftest.py)."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgewatch.cli import main
from edgewatch.clock import ManualClock
from edgewatch.collector import ingest_batch
from edgewatch.collector.inbox import Inbox
from edgewatch.collector.ingest import Ingestor, RateLimitedLog
from edgewatch.collector.store import Item, Quarantined, Store, StoreError, open_store
from edgewatch.config.collector import CollectorMqttConfig, StoreConfig
from edgewatch.contracts import codec
from edgewatch.contracts.summary import Summary
from edgewatch.errors import ConfigError
from support.broker import MosquittoBroker
from support.paths import DATA
from support.waiting import wait_until

ROOT = "edgewatch/v1"
EXAMPLE = json.loads((DATA / "summary-example.json").read_text())
MARKER = "PAYLOADTEXT42"
"""Written into every hostile payload: it must never reach the log."""




def summary_v1(seq: int, boot: str = "b1", device: str = "cam-1", **extra: Any) -> dict[str, Any]:
    """A schema-1 summary as old devices publish it (JSON)."""
    p: dict[str, Any] = copy.deepcopy(EXAMPLE)
    p.update(device=device, boot_id=boot, seq=seq, reference_id=MARKER, **extra)
    return p


def summary_v2(seq: int, boot: str = "b1", device: str = "cam-1") -> Summary:
    found = codec.decode("summary", json.dumps(summary_v1(seq, boot, device)).encode())
    assert isinstance(found, Summary)
    return found


def topic(leaf: str, device: str = "cam-1") -> str:
    return f"{ROOT}/depot/{device}/{leaf}"


def publish(port: int, messages: Sequence[tuple[str, bytes, str | None]],
            protocol: int = mqtt.MQTTv5) -> None:
    """Publish (topic, payload, content type) with QoS 1, in order; wait for every PUBACK."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                    protocol=protocol)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        infos = []
        for t, raw, ctype in messages:
            props = None
            if ctype is not None:
                props = Properties(PacketTypes.PUBLISH)
                props.ContentType = ctype
            infos.append(c.publish(t, raw, qos=1, properties=props))
        for info in infos:
            info.wait_for_publish(10)
    finally:
        c.loop_stop()
        c.disconnect()


class Spy:
    """A real store that records the size of every ingest_many call."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[tuple[int, int]] = []

    def ingest_many(self, items: Sequence[Item],
                    quarantine: Sequence[Quarantined] = ()) -> list[bool]:
        self.calls.append((len(items), len(quarantine)))
        return self.store.ingest_many(items, quarantine)


@contextlib.contextmanager
def running(broker: MosquittoBroker, store: Any, client_id: str = "", protocol: str = "5",
            batch_wait_ms: float = 50.0) -> Iterator[Ingestor]:
    """A started Ingestor whose subscriptions are in place (the broker confirmed them: the
    collector does not subscribe to command topics, so a probe there would never arrive);
    stopped afterwards."""
    cfg = CollectorMqttConfig(port=broker.port, protocol=protocol,  # type: ignore[arg-type]
                              client_id=client_id or f"c-{uuid.uuid4().hex[:8]}")
    ing = Ingestor(cfg, StoreConfig(batch_wait_ms=batch_wait_ms), store)
    ing.start()
    try:
        assert ing.subscribed.wait(15), "the collector never subscribed"
        yield ing
    finally:
        ing.stop()


# --------------------------------------------------------------------------- hostile input


def hostile_payloads() -> list[tuple[str, bytes, str | None, str]]:
    """(topic, payload, content type, expected reason)."""
    nul = json.dumps(summary_v1(1, boot=f"b\x00{MARKER}")).encode()  # "\u0000" in JSON
    surrogate = json.dumps(summary_v1(1)).replace('"b1"', '"\\ud800"').encode()
    assert b"\\ud800" in surrogate
    deep = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    huge = summary_v1(1)
    huge["frames"] = dict(huge["frames"], seen=10**400)
    return [
        (topic("summary"), json.dumps(summary_v1(2**64)).encode(), None, "invalid"),
        (topic("summary"), nul, None, "invalid"),
        (topic("summary"), surrogate, None, "encoding"),
        (topic("summary"), deep, None, "depth"),
        (topic("summary"), json.dumps(huge).encode(), None, "invalid"),
        # valid JSON that claims to be compressed MessagePack: the property is obeyed
        (topic("summary"), json.dumps(summary_v1(1)).encode(), codec.MSGPACK, "encoding"),
        (topic("summary", "cam-2"), json.dumps(summary_v1(1)).encode(), None, "device"),
        # decodes, but without a boot id it has no key: the store refuses it
        (topic("summary"), json.dumps(summary_v1(1, boot="")).encode(), None, "store"),
    ]


def test_hostile_payloads_are_counted_and_a_good_one_after_them_is_stored(
        broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edgewatch.collector.ingest")
    hostile = hostile_payloads()
    good = summary_v2(7)
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store, running(broker, store) as ing:
        publish(broker.port, [(t, raw, ctype) for t, raw, ctype, _ in hostile]
                + [(topic("summary"), codec.encode(good, "msgpack"), codec.MSGPACK)])
        wait_until(lambda: store.count("summary") == 1, 20, "the good summary stored")
        stats = ing.stats
        assert sum(stats.bad.values()) + stats.stored["summary"] == len(hostile) + 1
        assert stats.bad == Counter(reason for *_, reason in hostile)
        assert set(stats.bad) <= set(codec.REASONS)
        assert (stats.unexpected, stats.stored["summary"]) == (0, 1)
        assert store.summaries("cam-1") == [good]
        [kept] = store.quarantined()  # the one the codec let through
        assert (kept.reason, kept.payload) == ("store", hostile[-1][1])
        assert "boot_id" in kept.detail
    refusals = [r for r in caplog.records if "refused a message" in r.getMessage()]
    assert len(refusals) == len(set(stats.bad))  # once per reason a minute, not per message
    assert len(refusals) < len(hostile)
    assert MARKER not in caplog.text


def test_a_collector_on_mqtt_3_recognises_both_encodings(broker: MosquittoBroker,
                                                         tmp_path: Path) -> None:
    """MQTT 3.1.1 carries no content type: the codec recognises the bytes."""
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store, \
            running(broker, store, protocol="3.1.1") as ing:
        publish(broker.port, [
            (topic("summary"), codec.encode(summary_v2(1), "msgpack"), None),
            (topic("summary"), json.dumps(summary_v1(2)).encode(), None),  # schema 1 JSON
        ], protocol=mqtt.MQTTv311)
        wait_until(lambda: store.count("summary") == 2, 20, "two summaries stored")
        assert not ing.stats.bad
        assert [s.seq for s in store.summaries("cam-1")] == [2, 1]
        assert all(isinstance(s, Summary) for s in store.summaries("cam-1"))


# --------------------------------------------------------------------------- quarantine


def refuse_boot_id(url: str, boot_id: str) -> None:
    """Make the database itself refuse messages of one boot id (a constraint the store does
    not know about), as it refuses a value out of a column's range."""
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url[len("sqlite:///"):])) as conn:
            conn.execute(f"CREATE TRIGGER no_poison BEFORE INSERT ON messages WHEN "
                         f"NEW.boot_id = '{boot_id}' BEGIN SELECT RAISE(ABORT, 'no poison'); END")
            conn.commit()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE messages ADD CONSTRAINT no_poison "
                     f"CHECK (boot_id <> '{boot_id}')")


def test_a_message_the_store_refuses_is_quarantined_and_the_batch_stored(
        broker: MosquittoBroker, store_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(store_url)
    refuse_boot_id(store_url, "poison")
    spy = Spy(store)
    poison = json.dumps(summary_v1(2, boot="poison")).encode()
    client_id = f"c-{uuid.uuid4().hex[:8]}"
    try:
        with running(broker, spy, client_id, batch_wait_ms=1500) as ing:
            received = time.time()
            publish(broker.port, [
                (topic("summary"), codec.encode(summary_v2(1), "msgpack"), codec.MSGPACK),
                (topic("summary"), poison, codec.JSON),
                (topic("summary"), codec.encode(summary_v2(3), "msgpack"), codec.MSGPACK),
            ])
            wait_until(lambda: ing.stats.bad["store"] == 1, 20, "the poison quarantined")
            assert store.keys() == [("cam-1", "b1", 1), ("cam-1", "b1", 3)]
            assert (ing.stats.stored["summary"], ing.stats.store_errors) == (2, 0)
            assert spy.calls == [(3, 0), (2, 1)]  # the rest and the quarantine: one commit
        [q] = store.quarantined()
        assert (q.topic, q.reason, q.payload) == (topic("summary"), "store", poison)
        assert "no poison" in q.detail or "no_poison" in q.detail
        assert MARKER not in q.detail and "Failing row" not in q.detail  # PostgreSQL's DETAIL
        assert received - 1 <= q.received <= time.time()
        # acknowledged, the poison too: the session holds nothing to deliver again
        with running(broker, store, client_id) as again:
            time.sleep(1.0)
            assert (again.stats.bad, again.stats.duplicates) == (Counter(), 0)
    finally:
        store.close()

    config = tmp_path / "collector.toml"
    config.write_text(f'[mqtt]\nport = {broker.port}\n[store]\nurl = "{store_url}"\n')
    capsys.readouterr()
    assert main(["quarantine", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert topic("summary") in out and "1 quarantined message" in out and "store" in out
    assert main(["quarantine", "list", "--config", str(config), "--json", "--limit", "5"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert base64.b64decode(row["payload_base64"]) == poison
    assert (row["reason"], row["topic"], row["size"]) == ("store", topic("summary"), len(poison))
    assert main(["quarantine", "purge", "--config", str(config),
                 "--before", "2000-01-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out.strip() == "purged 0 quarantined messages"
    assert main(["quarantine", "purge", "--config", str(config), "--before", "noon"]) == 2
    with pytest.raises(SystemExit):  # --all or --before is required
        main(["quarantine", "purge", "--config", str(config)])
    capsys.readouterr()
    assert main(["quarantine", "purge", "--config", str(config), "--all"]) == 0
    assert capsys.readouterr().out.strip() == "purged 1 quarantined message"
    assert main(["quarantine", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "quarantine is empty"


def test_purge_before_keeps_what_came_later(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with open_store(url) as store:
        store.quarantine([Quarantined(t, "edgewatch/v1/f/d/summary", "store", "why",
                                      b"\x1b[31m\x00")
                          for t in (1767225600.0, 1767225600.0 + 86400)])  # 1 and 2 Jan 2026
    config = tmp_path / "collector.toml"
    config.write_text(f'[store]\nurl = "{url}"\n')
    assert main(["quarantine", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[31m\\x00" in out  # escaped for the terminal
    assert main(["quarantine", "purge", "--config", str(config),
                 "--before", "2026-01-01T12:00:00+00:00"]) == 0
    assert capsys.readouterr().out.strip() == "purged 1 quarantined message"
    with open_store(url) as store:
        assert [q.received for q in store.quarantined()] == [1767225600.0 + 86400]


# --------------------------------------------------------------------------- no stalls


def message(mid: int, topic_bytes: bytes, payload: bytes) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid, topic_bytes)
    msg.payload = payload
    msg.qos = 1
    return msg


def test_on_message_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 caplog: pytest.LogCaptureFixture) -> None:
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        ing = Ingestor(CollectorMqttConfig(), StoreConfig(), store)
        ing._on_message(ing.client, None, message(1, b"edgewatch/v1/f/\xff/summary", b"{}"))
        assert ing.stats.bad == Counter(topic=1)

        def broken(*_: Any) -> None:
            raise RuntimeError(f"bug quoting the payload: {MARKER}")

        monkeypatch.setattr(ingest_batch, "check", broken)
        raw = json.dumps(summary_v1(1)).encode()
        ing._on_message(ing.client, None, message(2, topic("summary").encode(), raw))
        assert (ing.stats.unexpected, ing.stats.received) == (1, 2)
        queued = ing._queue.take(0.0, 0.0)
        assert queued == [(1, 1, None), (2, 1, None)]  # both still acknowledged
        assert "RuntimeError" in caplog.text and MARKER not in caplog.text


class Flaky:
    """A real store that fails as a whole (database unreachable) the first ``n`` times."""

    def __init__(self, store: Store, n: int) -> None:
        self.store, self.n = store, n

    def ingest_many(self, items: Sequence[Item],
                    quarantine: Sequence[Quarantined] = ()) -> list[bool]:
        if self.n:
            self.n -= 1
            raise StoreError("connection refused")
        return self.store.ingest_many(items, quarantine)


def test_an_unreachable_store_is_retried_and_nothing_acknowledged_before(
        tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        flaky = Flaky(store, 2)
        ing = Ingestor(CollectorMqttConfig(), StoreConfig(), flaky)
        acks: list[tuple[int, int]] = []
        ing.client.ack = lambda mid, qos: acks.append((mid, qos))  # type: ignore[method-assign]
        item = Item("summary", "depot", "cam-1", summary_v2(1), 1.0, topic("summary"), b"")
        ing._store([(7, 1, item), (8, 1, None)])
        assert (ing.stats.store_errors, acks, store.count()) == (2, [(7, 1), (8, 1)], 1)
        assert not ing.stats.bad

        flaky.n = 1
        ing.stop_event.set()  # stopping while the store is down: nothing acknowledged
        ing._store([(9, 1, item._replace(message=summary_v2(2)))])
        assert (ing.stats.store_errors, acks[2:], store.count()) == (3, [], 1)


def test_refusals_are_logged_once_a_minute_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edgewatch.collector.ingest")
    clock = ManualClock()
    limited = RateLimitedLog(clock)
    assert limited.warning("invalid", "refused %s", "a")
    assert limited.warning("size", "refused %s", "b")  # another reason: its own minute
    clock.advance(59.0)
    assert not limited.warning("invalid", "refused %s", "c")
    assert not limited.warning("invalid", "refused %s", "d")
    clock.advance(1.0)
    assert limited.warning("invalid", "refused %s", "e")
    assert [r.getMessage() for r in caplog.records] == [
        "refused a", "refused b", "refused e (and 2 more since the last report)"]


# --------------------------------------------------------------------------- last seen


def test_a_restarted_collector_does_not_count_retained_status_as_contact(
        broker: MosquittoBroker, tmp_path: Path) -> None:
    """The broker re-delivers a device's retained birth to every new subscriber: after a
    collector restart that is history, not contact, so 'last seen' stays where it was."""
    from edgewatch.contracts.status import Status

    birth = codec.encode(Status(state="online", device="cam-1", boot_id="b1",
                                time=1_700_000_000.0), "json")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cam-1-birth")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        with running(broker, store):  # live: the device says it is online now
            c.publish(topic("status"), birth, qos=1, retain=True).wait_for_publish(10)
            wait_until(lambda: (s := store.device("cam-1")) is not None
                       and s.last_seen is not None, 20, "the live birth stored")
        c.loop_stop()
        c.disconnect()  # the device stays quiet from here on
        seen = store.device("cam-1").last_seen  # type: ignore[union-attr]
        time.sleep(1.1)
        with running(broker, store) as ing:  # the restart: the broker replays the birth
            wait_until(lambda: ing.stats.received >= 1 and not ing._queue, 20,
                       "the retained birth re-delivered")
            time.sleep(0.5)
        state = store.device("cam-1")
        assert state is not None and state.online
        assert state.last_seen == seen


def test_the_inbox_hands_over_whole_batches_and_holds_the_network_thread_when_full() -> None:
    inbox = Inbox(maxsize=5, batch=3)
    assert inbox.take(0.01, 0.0) == []  # nothing came
    for mid in range(1, 5):
        inbox.put((mid, 1, None))
    assert [m for m, _, _ in inbox.take(0.0, 10.0)] == [1, 2, 3]  # full: no waiting
    assert [m for m, _, _ in inbox.take(0.0, 0.05)] == [4]  # the rest once the wait is over
    for mid in range(5, 10):
        inbox.put((mid, 1, None))
    blocked = threading.Thread(target=inbox.put, args=((10, 1, None),))
    blocked.start()  # full: waits for the store thread to take some
    blocked.join(0.1)
    assert blocked.is_alive() and len(inbox) == 5
    assert [m for m, _, _ in inbox.take(0.0, 0.0)] == [5, 6, 7]
    blocked.join(5)
    assert not blocked.is_alive()
    assert [m for m, _, _ in inbox.take(0.0, 0.0)] == [8, 9, 10]


# --------------------------------------------------------------------------- second process


class Recorder:
    """What the collector's own process is told after a commit: the alerts to route and
    the stored messages the queued commands look at."""

    def __init__(self) -> None:
        self.alerts: list[tuple[str, Any]] = []
        self.stored_items: list[Item] = []

    def submit(self, fleet: str, payload: Any) -> None:
        self.alerts.append((fleet, payload))

    def stored(self, items: Sequence[Item]) -> None:
        self.stored_items.extend(items)

    def tick(self) -> None:
        pass


def test_a_second_process_decodes_and_stores_as_the_collector_would(
        broker: MosquittoBroker, store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """store.worker_process: the same counts, the same rows, the same quarantine, the new
    alert routed once and the statuses shown to the queued commands, from the collector's
    own process."""
    from edgewatch.contracts.alert import Alert, Span
    from edgewatch.contracts.status import Status

    caplog.set_level(logging.WARNING, logger="edgewatch.collector.ingest")
    hostile = hostile_payloads()
    alert = Alert(id="a1", rule="temperature", state="firing", severity="warning",
                  window=Span(1_700_000_000.0, 1_700_000_010.0), since=1_700_000_000.0,
                  updated=1_700_000_000.0, device="cam-1", boot_id="b1", seq=90)
    birth = Status(state="online", device="cam-1", boot_id="b1", time=1_700_000_000.0)
    recorder = Recorder()
    cfg = CollectorMqttConfig(port=broker.port, client_id=f"c-{uuid.uuid4().hex[:8]}")
    with open_store(store_url) as store:
        ing = Ingestor(cfg, StoreConfig(url=store_url, worker_process=True), store,
                       alerts=recorder)
        ing.commands = recorder
        ing.start()
        try:
            assert ing.subscribed.wait(15)
            good = [(topic("summary"), codec.encode(summary_v2(seq), "msgpack"), codec.MSGPACK)
                    for seq in (7, 8)]
            publish(broker.port, [(t, raw, ctype) for t, raw, ctype, _ in hostile] + good + [
                good[0],  # delivered twice: a duplicate
                (topic("alert"), codec.encode(alert, "msgpack"), codec.MSGPACK),
                (topic("alert"), codec.encode(alert, "msgpack"), codec.MSGPACK),
                (topic("status"), codec.encode(birth, "json"), codec.JSON)])
            wait_until(lambda: ing.stats.stored["status"] == 1, 30, "everything stored")
            wait_until(lambda: not ing._sent and not ing._queue, 10, "acknowledged")
            stats = ing.stats
            assert stats.bad == Counter(reason for *_, reason in hostile)
            assert (stats.stored, stats.unexpected, stats.store_errors) == (
                Counter(summary=2, alert=1, status=1), 0, 0)
            assert stats.duplicates == 2
            assert [s.seq for s in store.summaries("cam-1")] == [8, 7]
            [kept] = store.quarantined()
            assert (kept.reason, kept.payload) == ("store", hostile[-1][1])
            assert [(fleet, a.id) for fleet, a in recorder.alerts] == [("depot", alert.id)]
            assert {type(i.message).__name__ for i in recorder.stored_items} == {"Alert", "Status"}
            assert store.device("cam-1").online  # type: ignore[union-attr]
            assert ing.process is not None and ing.process.started == 1
        finally:
            ing.stop()
    refusals = [r for r in caplog.records if "refused a message" in r.getMessage()]
    assert len(refusals) == len(set(stats.bad))  # once per reason, as in one process
    assert MARKER not in caplog.text


def worker_pids() -> list[int]:
    """The live second processes of this process (spawned by multiprocessing)."""
    import psutil

    found = []
    for child in psutil.Process().children():
        try:
            if (child.status() != psutil.STATUS_ZOMBIE
                    and "spawn_main" in " ".join(child.cmdline())):
                found.append(child.pid)
        except psutil.Error:  # gone meanwhile
            pass
    return found


def test_a_killed_second_process_is_started_again_and_nothing_is_lost(
        broker: MosquittoBroker, tmp_path: Path) -> None:
    """SIGKILL of the second process while it holds batches: those were not acknowledged;
    another process stores them (again: the store keeps each message once)."""
    import os
    import signal

    url = f"sqlite:///{tmp_path / 'c.db'}"
    cfg = CollectorMqttConfig(port=broker.port, client_id=f"c-{uuid.uuid4().hex[:8]}")
    n = 400
    with open_store(url) as store:
        ing = Ingestor(cfg, StoreConfig(url=url, worker_process=True, batch_size=20), store)
        ing.start()
        try:
            assert ing.subscribed.wait(15)
            sender = threading.Thread(target=publish, args=(broker.port, [
                (topic("summary"), codec.encode(summary_v2(seq), "msgpack"), codec.MSGPACK)
                for seq in range(n)]))
            sender.start()
            wait_until(lambda: ing.stats.stored["summary"] > 0, 30, "a first batch stored")
            [pid] = worker_pids()
            os.kill(pid, signal.SIGKILL)
            sender.join(60)
            wait_until(lambda: store.count("summary") == n, 60, "every summary stored")
            wait_until(lambda: not ing._sent and not ing._queue, 10, "acknowledged")
            assert ing.stats.store_errors >= 1  # the batch it held, sent again
            assert ing.process is not None and ing.process.started == 2
            assert worker_pids() not in ([], [pid])
            assert ing.stats.stored["summary"] + ing.stats.duplicates >= n
        finally:
            ing.stop()
        assert worker_pids() == []  # stopped with the collector
        # acknowledged: a new session of the same client finds nothing left to deliver
        with running(broker, store, cfg.client_id) as again:
            time.sleep(1.0)
            assert again.stats.received == 0


def test_worker_process_needs_a_store_another_process_can_open() -> None:
    from edgewatch.config.collector import parse_collector_config

    with pytest.raises(ConfigError, match="worker_process"):  # edgewatch check-config
        parse_collector_config({"store": {"url": "sqlite:///:memory:", "worker_process": True}})
    with pytest.raises(ConfigError, match="worker_process"):  # a library caller's own tree
        Ingestor(CollectorMqttConfig(), StoreConfig(url="sqlite:///:memory:",
                                                    worker_process=True), None)  # type: ignore


def test_acknowledgements_keep_the_order_of_arrival_with_a_second_process(
        tmp_path: Path) -> None:
    """A batch of evidence chunks only (written by the collector's own process) is not
    acknowledged before the batches still in the second process: MQTT wants PUBACKs in
    the order the messages came."""
    from edgewatch.collector.ingest_batch import Raw
    from edgewatch.contracts.evidence import EvidenceChunk

    url = f"sqlite:///{tmp_path / 'c.db'}"
    with open_store(url) as store:
        ing = Ingestor(CollectorMqttConfig(), StoreConfig(url=url, worker_process=True), store)
        acks: list[tuple[int, int]] = []
        ing.client.ack = lambda mid, qos: acks.append((mid, qos))  # type: ignore[method-assign]
        try:
            raw = Raw(topic("summary"), codec.encode(summary_v2(1), "msgpack"), codec.MSGPACK,
                      False, 1.0)
            chunk = EvidenceChunk(frame="f-1", file="f-1.jpg", index=0, count=1, size=3,
                                  sha256="0" * 64, data=b"abc", device="cam-1")
            ing._store([(1, 1, raw)])  # handed to the second process
            ing._store([(2, 1, Item("evidence", "depot", "cam-1", chunk, 1.0))])
            assert acks == [(1, 1), (2, 1)]
            assert (store.count("summary"), ing.stats.chunks["ignored"]) == (1, 1)
        finally:
            assert ing.process is not None
            ing.process.close()  # never started: only its second process to stop
