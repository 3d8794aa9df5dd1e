"""Collector ingest rate (SQLite and PostgreSQL) next to the broker's raw delivery rate.

    python bench/ingest.py [--messages 20000] [--devices 50] [--repeats 3]
                           [--encoding msgpack|json|v1]
                           [--pg postgresql://postgres@127.0.0.1/test]

Starts a private mosquitto. Every measurement drains a backlog: the subscriber's persistent
session is created, the subscriber goes away, the messages are published (the broker queues
them for the session; how fast the bench publishes does not matter), then the subscriber
comes back and the clock runs until it has them all. So each line is what one subscriber
takes in, as fast as the broker hands it over:

- broker raw delivery: ``mosquitto_sub`` (C) counting the messages: the broker's capacity;
- paho raw delivery: a Python paho subscriber that only counts (what any Python subscriber
  can take at most);
- collector: the real Ingestor (decoding through the contracts, batched idempotent store,
  PUBACK after commit), into SQLite and into PostgreSQL, each also with
  ``store.worker_process`` (decoding and storing in a second process, started before the
  clock as in a running collector).

The bench's process sets the garbage collector as ``edgewatch collector`` does
(``collector.gc_settings``), so the in-process rows and the paho subscriber run with it;
the second process of ``worker_process`` sets it itself.

The same realistic summary payloads from simulated devices in each run: schema 2 in the
default MessagePack+zlib encoding (``--encoding json``: schema 2 as JSON; ``v1``: the
schema-1 JSON that devices published before the compact encoding). Prints the median of
the repeats: messages per second, the ratio to the broker's raw delivery, and the CPU time
of the subscribing process per message, with its second process's for ``worker_process``
(less sensitive to other load on the machine: one core spent only on the collector takes
10^6 / that many messages a second).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from edgewatch.collector import gc_settings  # noqa: E402
from edgewatch.collector.ingest import Ingestor  # noqa: E402
from edgewatch.collector.store import open_store  # noqa: E402
from edgewatch.config.collector import CollectorMqttConfig, StoreConfig  # noqa: E402
from edgewatch.contracts import codec  # noqa: E402
from support.broker import MosquittoBroker  # noqa: E402

EXAMPLE = json.loads((REPO / "tests" / "data" / "summary-example.json").read_text())
TOPICS = "edgewatch/v1/#"
Msg = tuple[str, bytes, str]


class Run(NamedTuple):
    rate: float
    """Messages per second."""
    cpu_us: float | None
    """CPU time of the subscriber's processes per message, in microseconds (None: not
    measured, the subscriber is ``mosquitto_sub``)."""


def messages(n: int, devices: int, boot: str, encoding: str) -> list[Msg]:
    out = []
    for i in range(n):
        d, seq = i % devices, i // devices
        payload = dict(EXAMPLE, device=f"sim-{d:03d}", boot_id=boot, seq=seq)
        topic = f"edgewatch/v1/bench/sim-{d:03d}/summary"
        raw = json.dumps(payload).encode()
        if encoding == "v1":
            out.append((topic, raw, codec.JSON))
        else:
            wire = codec.decode("summary", raw)
            out.append((topic, codec.encode(wire, encoding), codec.content_type(encoding)))
    return out


def _props(content_type: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = content_type
    return props


def publish(port: int, msgs: list[Msg]) -> None:
    """Publish with QoS 1 and wait for every PUBACK (the broker has queued them)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(200)
    c.connect("127.0.0.1", port)
    c.loop_start()
    props = {ct: _props(ct) for ct in {m[2] for m in msgs}}
    infos = [c.publish(t, p, qos=1, properties=props[ct]) for t, p, ct in msgs]
    for info in infos:
        info.wait_for_publish(300)
    c.loop_stop()
    c.disconnect()


def _sub_command(port: int, client_id: str, *extra: str) -> list[str]:
    return ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1",
            "-c", "-i", client_id, "-x", "3600", "-t", TOPICS, *extra]


def broker_rate(port: int, msgs: list[Msg]) -> Run:
    """mosquitto_sub taking the backlog: from its start to its exit after the last one."""
    client_id = f"raw-{uuid.uuid4().hex[:6]}"
    subprocess.run(_sub_command(port, client_id, "-E"), check=True, timeout=30)
    publish(port, msgs)
    t0 = time.perf_counter()
    subprocess.run(_sub_command(port, client_id, "-C", str(len(msgs)), "-F", ""),
                   check=True, timeout=600, stdout=subprocess.DEVNULL)
    return Run(len(msgs) / (time.perf_counter() - t0), None)


def paho_rate(port: int, msgs: list[Msg]) -> Run:
    """A Python paho subscriber (persistent session) that only counts."""
    client_id = f"paho-{uuid.uuid4().hex[:6]}"
    subscribed, done, count = threading.Event(), threading.Event(), [0]

    def on_message(*_: Any) -> None:
        count[0] += 1
        if count[0] == len(msgs):
            done.set()

    def connect() -> mqtt.Client:
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                          protocol=mqtt.MQTTv5)
        sub.on_message = on_message
        sub.on_subscribe = lambda *_: subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        sub.connect("127.0.0.1", port, clean_start=False, properties=props)
        return sub

    sub = connect()
    sub.subscribe(TOPICS, qos=1)
    sub.loop_start()
    subscribed.wait(10)
    sub.disconnect()
    sub.loop_stop()
    publish(port, msgs)
    t0, cpu0 = time.perf_counter(), time.process_time()
    sub = connect()
    sub.loop_start()
    done.wait(600)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sub.disconnect()
    sub.loop_stop()
    return Run(len(msgs) / elapsed, cpu * 1e6 / len(msgs))


def collector_rate(port: int, url: str, msgs: list[Msg], worker: bool = False) -> Run:
    """The Ingestor taking the backlog: from its start until every message is stored.
    ``worker``: with ``store.worker_process`` (its second process started and warm before
    the clock starts, as in a running collector); its CPU is then the two processes'."""
    store = open_store(url)
    cfg = CollectorMqttConfig(port=port, client_id=f"c-{uuid.uuid4().hex[:6]}")
    store_cfg = StoreConfig(url=url, worker_process=worker)
    ing = Ingestor(cfg, store_cfg, store)
    ing.start()
    ing.subscribed.wait(10)
    ing.stop()
    publish(port, msgs)
    ing = Ingestor(cfg, store_cfg, store)
    if ing.process is not None:
        ing.process.ingest([])  # started (spawn, imports) before the clock
    t0, cpu0, children0 = time.perf_counter(), time.process_time(), children_cpu()
    ing.start()
    while ing.stats.stored["summary"] + ing.stats.duplicates < len(msgs):
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0 + children_cpu() - children0
    ing.stop()
    stored = store.count("summary")
    store.close()
    if stored < len(msgs):
        print(f"warning: {stored} of {len(msgs)} stored", file=sys.stderr)
    return Run(len(msgs) / elapsed, cpu * 1e6 / len(msgs))


def children_cpu() -> float:
    """CPU seconds of this process's live children so far (the ingest's second process:
    read while it runs, so its start-up, before the clock, is not counted)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += times.user + times.system
    return total


def pg_database(admin_url: str) -> tuple[str, Any]:
    import psycopg

    admin = psycopg.connect(admin_url, autocommit=True)
    name = f"ew_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")
    return f"{admin_url.rsplit('/', 1)[0]}/{name}", (admin, name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000,
                    help="backlog per run: long enough that connecting and resuming the "
                    "session (tens of ms) hardly weigh in the rate")
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--encoding", choices=("msgpack", "json", "v1"), default="msgpack")
    args = ap.parse_args()
    gc_settings.for_ingest()  # as edgewatch collector does in its process
    enc, n = args.encoding, args.messages
    rates: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(
            workdir=Path(tmp) / "b", extra_config=["max_queued_messages 1000000"]) as b:
        pg_url: str | None = None
        admin: Any = None
        try:
            pg_url, (admin, name) = pg_database(args.pg)
        except Exception as exc:  # no server: say so, keep the other rows
            print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        runs: list[tuple[str, Callable[[list[Msg]], Run]]] = [
            ("broker raw delivery (C)", lambda m: broker_rate(b.port, m)),
            ("paho raw delivery (Python)", lambda m: paho_rate(b.port, m)),
            ("collector -> SQLite", lambda m: collector_rate(b.port, f"sqlite:///{tmp}/f.db", m)),
            ("collector -> SQLite, worker_process", lambda m: collector_rate(
                b.port, f"sqlite:///{tmp}/w.db", m, worker=True)),
        ]
        if pg_url is not None:
            pg = pg_url
            runs.append(("collector -> PostgreSQL", lambda m: collector_rate(b.port, pg, m)))
            runs.append(("collector -> PostgreSQL, worker_process", lambda m: collector_rate(
                b.port, pg, m, worker=True)))
        for r in range(args.repeats):
            for i, (label, run) in enumerate(runs):  # boot ids of their own: no duplicates
                msgs = messages(n, args.devices, f"run{i}-{r}", enc)
                rates.setdefault(label, []).append(run(msgs))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1].rate:.0f}"
                                                 for k, v in rates.items()), flush=True)
        if admin is not None:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    raw = statistics.median(r.rate for r in rates["broker raw delivery (C)"])
    size = len(messages(1, 1, "x" * 32, enc)[0][1])
    print(f"{n} summaries ({enc}, {size} bytes each) from {args.devices} devices, a backlog "
          f"taken by one subscriber; median of {args.repeats}")
    print(f"{'':40} {'msg/s':>8} {'x raw':>7} {'CPU us/msg':>11}")
    for label, runs_of in rates.items():
        rate = statistics.median(r.rate for r in runs_of)
        cpus = [r.cpu_us for r in runs_of if r.cpu_us is not None]
        cpu = f"{statistics.median(cpus):11.0f}" if cpus else f"{'-':>11}"
        print(f"{label:40} {rate:8.0f} {rate / raw:7.2f} {cpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
