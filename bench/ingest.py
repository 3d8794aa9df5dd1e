"""Collector ingest rate (SQLite and PostgreSQL) next to the broker's raw delivery rate.

    python bench/ingest.py [--messages 5000] [--devices 50] [--encoding msgpack|json|v1]
                           [--pg postgresql://postgres@127.0.0.1/test]

Starts a private mosquitto. Raw: a QoS 1 subscriber that only counts. Collector: the real
Ingestor (decoding through the contracts, batched idempotent store, PUBACK after commit).
The same realistic summary payloads from simulated devices in each run: schema 2 in the
default MessagePack+zlib encoding (``--encoding json``: schema 2 as JSON; ``v1``: the
schema-1 JSON that devices published before the compact encoding).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from edgewatch.collector.ingest import Ingestor  # noqa: E402
from edgewatch.collector.store import open_store  # noqa: E402
from edgewatch.config.collector import CollectorMqttConfig, StoreConfig  # noqa: E402
from edgewatch.contracts import codec  # noqa: E402
from support.broker import MosquittoBroker  # noqa: E402

EXAMPLE = json.loads((REPO / "tests" / "data" / "summary-example.json").read_text())
Msg = tuple[str, bytes, str]


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
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(200)
    c.connect("127.0.0.1", port)
    c.loop_start()
    props = {ct: _props(ct) for ct in {m[2] for m in msgs}}
    infos = [c.publish(t, p, qos=1, properties=props[ct]) for t, p, ct in msgs]
    for info in infos:
        info.wait_for_publish(120)
    c.loop_stop()
    c.disconnect()


def raw_rate(port: int, msgs: list[Msg]) -> float:
    done, count = threading.Event(), [0]

    def on_message(*_: Any) -> None:
        count[0] += 1
        if count[0] == len(msgs):
            done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw-sub",
                      protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe("edgewatch/v1/#", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    publish(port, msgs)
    done.wait(300)
    elapsed = time.perf_counter() - t0
    sub.loop_stop()
    sub.disconnect()
    return len(msgs) / elapsed


def collector_rate(port: int, url: str, msgs: list[Msg]) -> float:
    store = open_store(url)
    ing = Ingestor(CollectorMqttConfig(port=port, client_id=f"c-{uuid.uuid4().hex[:6]}"),
                   StoreConfig(), store)
    ing.start()
    while not ing.stats.connected:
        time.sleep(0.05)
    time.sleep(0.3)
    t0 = time.perf_counter()
    publish(port, msgs)
    while store.count("summary") < len(msgs):
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    ing.stop()
    store.close()
    return len(msgs) / elapsed


def pg_database(admin_url: str) -> tuple[str, Any]:
    import psycopg

    admin = psycopg.connect(admin_url, autocommit=True)
    name = f"ew_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")
    return f"{admin_url.rsplit('/', 1)[0]}/{name}", (admin, name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--encoding", choices=("msgpack", "json", "v1"), default="msgpack")
    args = ap.parse_args()
    enc = args.encoding
    rows = []
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(
            workdir=Path(tmp) / "b", extra_config=["max_queued_messages 1000000"]) as b:
        rows.append(("broker raw delivery (QoS 1)",
                     raw_rate(b.port, messages(args.messages, args.devices, "raw", enc))))
        rows.append(("collector -> SQLite", collector_rate(
            b.port, f"sqlite:///{tmp}/fleet.db", messages(args.messages, args.devices, "s", enc))))
        try:
            url, (admin, name) = pg_database(args.pg)
        except Exception as exc:  # no server: say so, keep the other rows
            print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        else:
            rows.append(("collector -> PostgreSQL", collector_rate(
                b.port, url, messages(args.messages, args.devices, "p", enc))))
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    raw = rows[0][1]
    size = len(messages(1, 1, "x" * 32, enc)[0][1])
    print(f"{args.messages} summaries ({enc}, {size} bytes each) from {args.devices} devices")
    for name, rate in rows:
        print(f"{name:30} {rate:8.0f} msg/s   {rate / raw:5.2f} x raw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
