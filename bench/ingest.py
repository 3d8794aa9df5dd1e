"""Collector ingest rate (SQLite and PostgreSQL) next to the broker's raw delivery rate.

    python bench/ingest.py [--messages 5000] [--devices 50] [--pg postgresql://postgres@127.0.0.1/test]

Starts a private mosquitto. Raw: a QoS 1 subscriber that only counts. Collector: the real
Ingestor (validation, batched idempotent store, PUBACK after commit). The same realistic
summary payloads (about 15 KB) from simulated devices in each run.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from broker import MosquittoBroker  # noqa: E402
from edgewatch.collector.config import CollectorMqttConfig, StoreConfig  # noqa: E402
from edgewatch.collector.ingest import Ingestor  # noqa: E402
from edgewatch.collector.store import open_store  # noqa: E402

EXAMPLE = json.loads((REPO / "tests" / "data" / "summary-example.json").read_text())


def messages(n: int, devices: int, boot: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        d, seq = i % devices, i // devices
        payload = dict(EXAMPLE, device=f"sim-{d:03d}", boot_id=boot, seq=seq)
        out.append((f"edgewatch/v1/bench/sim-{d:03d}/summary", json.dumps(payload).encode()))
    return out


def publish(port: int, msgs: list[tuple[str, bytes]]) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(200)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(t, p, qos=1) for t, p in msgs]
    for info in infos:
        info.wait_for_publish(120)
    c.loop_stop()
    c.disconnect()


def raw_rate(port: int, msgs: list[tuple[str, bytes]]) -> float:
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


def collector_rate(port: int, url: str, msgs: list[tuple[str, bytes]]) -> float:
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
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(
            workdir=Path(tmp) / "b", extra_config=["max_queued_messages 1000000"]) as b:
        rows.append(("broker raw delivery (QoS 1)",
                     raw_rate(b.port, messages(args.messages, args.devices, "raw"))))
        rows.append(("collector -> SQLite", collector_rate(
            b.port, f"sqlite:///{tmp}/fleet.db", messages(args.messages, args.devices, "s"))))
        try:
            url, (admin, name) = pg_database(args.pg)
        except Exception as exc:  # no server: say so, keep the other rows
            print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        else:
            rows.append(("collector -> PostgreSQL", collector_rate(
                b.port, url, messages(args.messages, args.devices, "p"))))
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    raw = rows[0][1]
    print(f"{args.messages} summaries (~{len(json.dumps(EXAMPLE)) // 1000} KB) from "
          f"{args.devices} devices")
    for name, rate in rows:
        print(f"{name:30} {rate:8.0f} msg/s   {rate / raw:5.2f} x raw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
