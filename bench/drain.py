"""Outbox drain rate against a local Mosquitto, next to raw paho QoS 1 publishing.

    python bench/drain.py [--messages 10000] [--repeats 3] [--inflight 32]
                          [--encoding msgpack|json]

Starts a private mosquitto on a free loopback port. An outbox is filled once with the
messages (schema-2 summaries, as the agent queues them, with the agent's default
``mqtt.encoding``); each round gets a copy of it. Each round: (1) raw paho: the very
payloads the edgewatch round sends (same topic, same bytes, same content-type property,
packed once) published with QoS 1 by a plain paho client, waiting for every PUBACK; (2)
edgewatch: the Publisher connects and drains the outbox copy (a row is deleted only after
its PUBACK) until it is empty. Both times run from the connection to the last PUBACK (and,
for edgewatch, the last delete). A mosquitto_sub process counts deliveries. Prints each round
and the medians of messages per second and of this process's CPU time per message, and
the ratios edgewatch/raw (the CPU ratio is less sensitive to other load on the machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from edgewatch.agent.delivery.outbox import Outbox  # noqa: E402
from edgewatch.agent.delivery.publisher import Publisher  # noqa: E402
from edgewatch.agent.delivery.status import Manifest  # noqa: E402
from edgewatch.agent.delivery.wire import PackedProperties, backlog_encoder  # noqa: E402
from edgewatch.clock import SystemClock  # noqa: E402
from edgewatch.config.delivery import MqttConfig  # noqa: E402
from edgewatch.contracts import codec  # noqa: E402
from edgewatch.contracts.topics import Topics  # noqa: E402
from support.broker import MosquittoBroker  # noqa: E402

TOPICS = Topics("edgewatch/v1", "f", "cam-1")


class Round(NamedTuple):
    rate: float
    """Messages per second, from the connection to the last PUBACK (and delete)."""
    cpu_us: float
    """CPU time of this process (publisher only) per message, in microseconds."""


def payload() -> dict[str, Any]:
    """The example summary as the agent queues it: schema 2, as builtins."""
    raw = (REPO / "tests" / "data" / "summary-example.json").read_bytes()
    summary = codec.decode("summary", raw)
    data: dict[str, Any] = msgspec.json.decode(codec.encode(summary, "json"))
    return data


class Counter:
    """A mosquitto_sub process that counts deliveries (outside this process: its work does
    not compete with the publisher's for the interpreter or show in its CPU time)."""

    def __init__(self, port: int, n: int) -> None:
        self.n = n
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1",
             "-t", TOPICS.for_kind("summary"), "-C", str(n), "-F", "x"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def delivered(self, timeout: float = 30.0) -> int:
        """Deliveries counted (waits up to ``timeout`` for all ``n``)."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.count(b"x")


def fill(path: Path, data: dict[str, Any], n: int, cfg: MqttConfig) -> None:
    outbox = Outbox(path, device="cam-1", boot_id="b", clock=SystemClock(), max_bytes=2**30,
                    max_age_s=1e9, merge=None, wire=backlog_encoder(cfg))
    for _ in range(n):
        outbox.put("summary", data, priority=0)
    outbox.close()


def wire_payloads(path: Path, cfg: MqttConfig) -> list[bytes]:
    """What the publisher sends for each row of a filled outbox (a backlog: historical)."""
    outbox = Outbox(path, device="cam-1", boot_id="b", clock=SystemClock(), max_bytes=2**30,
                    max_age_s=1e9, merge=None)
    rows = outbox.pending(10**9)
    outbox.close()
    encode = backlog_encoder(cfg)
    if encode is None:
        return [('{"historical":true,' + r.body[1:]).encode() for r in rows]
    return [r.wire or encode(msgspec.json.decode(r.body)) for r in rows]


def raw_rate(port: int, bodies: list[bytes], inflight: int, content_type: str) -> Round:
    n = len(bodies)
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
    props = PackedProperties(content_type)
    topic = TOPICS.for_kind("summary")
    t0, cpu0 = time.perf_counter(), time.process_time()
    c.connect("127.0.0.1", port)
    c.loop_start()
    for body in bodies:
        c.publish(topic, body, qos=1, properties=props)
    acked.wait(300)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    c.loop_stop()
    c.disconnect()
    delivered = counter.delivered()
    if delivered < n:
        print(f"warning: raw delivered {delivered}/{n}", file=sys.stderr)
    return Round(n / elapsed, cpu * 1e6 / n)


def outbox_rate(port: int, filled: Path, n: int, cfg: MqttConfig, work: Path) -> Round:
    clock = SystemClock()
    path = work / f"outbox-{time.monotonic_ns()}.db"
    shutil.copy(filled, path)
    with path.open("rb+") as f:  # on disk, as a backlog written over hours would be: the
        os.fsync(f.fileno())     # drain's first checkpoint must not write out the copy
    outbox = Outbox(path, device="cam-1", boot_id="b", clock=clock, max_bytes=2**30,
                    max_age_s=1e9, merge=None, wire=backlog_encoder(cfg))
    counter = Counter(port, n)
    manifest = Manifest("cam-1", "f", "b", 0.0, "m", "0", "ssd", "r", "c")
    pub = Publisher(cfg, outbox, TOPICS, manifest, clock=clock)
    t0, cpu0 = time.perf_counter(), time.process_time()
    pub.start()
    drained = pub.wait_drained(600)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    pub.stop()
    delivered = counter.delivered()
    left = outbox.stats().pending
    outbox.close()
    if not drained or delivered < n or left:
        print(f"warning: drained={drained} delivered={delivered}/{n} left={left}",
              file=sys.stderr)
    return Round(n / elapsed, cpu * 1e6 / n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--inflight", type=int, default=32)
    ap.add_argument("--encoding", choices=("msgpack", "json"), default=MqttConfig().encoding)
    args = ap.parse_args()
    raw: list[Round] = []
    ours: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(workdir=Path(tmp) / "b") as b:
        cfg = MqttConfig(enabled=True, port=b.port, max_inflight=args.inflight,
                         encoding=args.encoding)
        filled = Path(tmp) / "filled.db"
        fill(filled, payload(), args.messages, cfg)
        bodies = wire_payloads(filled, cfg)
        for i in range(args.repeats):
            raw.append(raw_rate(b.port, bodies, args.inflight, codec.content_type(cfg.encoding)))
            ours.append(outbox_rate(b.port, filled, args.messages, cfg, Path(tmp)))
            print(f"round {i + 1}: raw {raw[-1].rate:.0f} msg/s ({raw[-1].cpu_us:.0f} us CPU/msg), "
                  f"edgewatch {ours[-1].rate:.0f} msg/s ({ours[-1].cpu_us:.0f} us CPU/msg), "
                  f"ratio {ours[-1].rate / raw[-1].rate:.2f}", flush=True)
    r, o = (statistics.median(x.rate for x in raw), statistics.median(x.rate for x in ours))
    rc, oc = (statistics.median(x.cpu_us for x in raw), statistics.median(x.cpu_us for x in ours))
    size = statistics.median(len(body) for body in bodies)
    print(f"{args.messages} summaries of {size:.0f} bytes ({args.encoding}), QoS 1, "
          f"{args.inflight} in flight, median of {args.repeats}")
    print(f"{'':24} {'msg/s':>8} {'CPU us/msg':>11}")
    print(f"{'raw paho publish':24} {r:8.0f} {rc:11.0f}")
    print(f"{'edgewatch outbox drain':24} {o:8.0f} {oc:11.0f}")
    print(f"{'ratio edgewatch/raw':24} {o / r:8.2f} {oc / rc:11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
