"""Outbox drain rate against a local Mosquitto, next to raw paho QoS 1 publishing.

    python bench/drain.py [--messages 10000] [--repeats 3] [--inflight 32]

Starts a private mosquitto on a free loopback port. Each round: (1) raw paho: publish the
messages with QoS 1 and wait for every PUBACK; (2) edgewatch: the same messages committed
to a fresh SQLite outbox, then drained by the Publisher (a row is deleted only after its
PUBACK). A subscriber counts deliveries. Prints medians of messages per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from edgewatch.agent.delivery.outbox import Outbox  # noqa: E402
from edgewatch.agent.delivery.publisher import Publisher  # noqa: E402
from edgewatch.agent.delivery.status import Manifest  # noqa: E402
from edgewatch.clock import SystemClock  # noqa: E402
from edgewatch.config.delivery import MqttConfig  # noqa: E402
from edgewatch.contracts.topics import Topics  # noqa: E402
from support.broker import MosquittoBroker  # noqa: E402


def payload() -> dict[str, Any]:
    return json.loads((REPO / "tests" / "data" / "summary-example.json").read_text())


class Counter:
    def __init__(self, port: int, n: int) -> None:
        self.n, self.count, self.done = n, 0, threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("bench/#", qos=1)
        self.client.subscribe("edgewatch/v1/+/+/summary", qos=1)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, *_: Any) -> None:
        self.count += 1
        if self.count >= self.n:
            self.done.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def raw_rate(port: int, body: bytes, n: int, inflight: int) -> float:
    counter = Counter(port, n)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-raw",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(inflight)
    acked = threading.Event()
    count = [0]

    def on_publish(*_: Any) -> None:
        count[0] += 1
        if count[0] >= n:
            acked.set()

    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.perf_counter()
    for _ in range(n):
        c.publish("bench/raw", body, qos=1)
    acked.wait(300)
    elapsed = time.perf_counter() - t0
    counter.done.wait(30)
    c.loop_stop()
    c.disconnect()
    counter.close()
    return n / elapsed


def outbox_rate(port: int, data: dict[str, Any], n: int, inflight: int, work: Path) -> float:
    clock = SystemClock()
    outbox = Outbox(work / f"outbox-{time.monotonic_ns()}.db", device="cam-1", boot_id="b",
                    clock=clock, max_bytes=2**30, max_age_s=1e9, merge=None)
    for _ in range(n):
        outbox.put("summary", data, priority=0)
    counter = Counter(port, n)
    cfg = MqttConfig(enabled=True, port=port, max_inflight=inflight)
    manifest = Manifest("cam-1", "f", "b", 0.0, "m", "0", "ssd", "r", "c")
    pub = Publisher(cfg, outbox, Topics("edgewatch/v1", "f", "cam-1"), manifest, clock=clock)
    t0 = time.perf_counter()
    pub.start()
    drained = pub.wait_drained(600)
    elapsed = time.perf_counter() - t0
    counter.done.wait(30)
    pub.stop()
    delivered = counter.count
    counter.close()
    outbox.close()
    if not drained or delivered < n:
        print(f"warning: drained={drained} delivered={delivered}/{n}", file=sys.stderr)
    return n / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--inflight", type=int, default=32)
    args = ap.parse_args()
    data = payload()
    body = json.dumps(data).encode()
    raw, ours = [], []
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(workdir=Path(tmp) / "b") as b:
        for _ in range(args.repeats):
            raw.append(raw_rate(b.port, body, args.messages, args.inflight))
            ours.append(outbox_rate(b.port, data, args.messages, args.inflight, Path(tmp)))
    r, o = statistics.median(raw), statistics.median(ours)
    print(f"{args.messages} summaries of {len(body)} bytes, QoS 1, {args.inflight} in flight, "
          f"median of {args.repeats}")
    print(f"{'raw paho publish':32} {r:10.0f} msg/s")
    print(f"{'edgewatch outbox drain':32} {o:10.0f} msg/s   ratio {o / r:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
