"""The collector's CPU cost per summary in instructions, next to a bare paho subscriber's.

    python bench/ingest_cost.py [--messages 300] [--encoding msgpack|json|v1]
                                [--protocol 5|3.1.1]

Needs valgrind (Debian: ``apt install valgrind``). Wall-clock rates on a shared machine
swing with whatever else runs (``bench/ingest.py`` gives them); instruction counts hardly
do: ``valgrind --tool=callgrind`` counts every instruction a process executes, nearly the
same for the same inputs whatever the other cores do (only the batch sizes, which follow
timing, vary a little). So this prints one number per subscriber that can be compared
across runs and changes:

- **paho subscriber**: a Python paho client (MQTT 5, persistent session, QoS 1) that only
  counts the messages: what any Python subscriber pays per message;
- **collector -> SQLite**: the real Ingestor (decoding through the contracts, the canonical
  JSON, the batched idempotent store, PUBACK after commit).

Each subscriber takes a backlog of ``--messages`` summaries queued for its persistent
session by a private mosquitto (published beforehand, outside the count). Each runs twice
under callgrind, once with an empty backlog and once with the full one, so start-up and
imports cancel out: instructions per message = (full - empty) / messages. The ratio is the
paho subscriber's cost over the collector's: the share of the collector's CPU that is paho's
own, and the most one Python process can take relative to a subscriber that does nothing.

``--protocol 3.1.1`` runs both subscribers on MQTT 3.1.1 (``mqtt.protocol``): no MQTT 5
properties to parse (paho parses them in Python), the content type recognised from the
payload's first bytes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from ingest import Msg, messages, publish  # noqa: E402
from support.broker import MosquittoBroker  # noqa: E402
from support.tools import find_tool  # noqa: E402

TOPICS = "edgewatch/v1/#"


def consume(kind: str, protocol: str, port: int, n: int, url: str, client_id: str) -> None:
    """The measured child: take ``n`` queued messages as ``kind`` and exit."""
    if kind == "paho":
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        done, count = threading.Event(), [0]

        def on_message(*_: object) -> None:
            count[0] += 1
            if count[0] >= n:
                done.set()

        if protocol == "5":
            sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                              protocol=mqtt.MQTTv5)
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            sub.connect("127.0.0.1", port, clean_start=False, properties=props)
        else:
            sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                              protocol=mqtt.MQTTv311, clean_session=False)
            sub.connect("127.0.0.1", port)
        sub.on_message = on_message
        sub.loop_start()
        if n:
            done.wait(3600)
        time.sleep(0.5)  # the last acknowledgements leave
        sub.disconnect()
        sub.loop_stop()
        return
    collector(protocol, port, url, client_id, n)


def collector(protocol: str, port: int, url: str, client_id: str, n: int) -> None:
    """The real Ingestor on a persistent session: subscribe, store ``n`` messages, leave;
    the garbage collector set as ``edgewatch collector`` sets it."""
    from edgewatch.collector import gc_settings
    from edgewatch.collector.ingest import Ingestor
    from edgewatch.collector.store import open_store
    from edgewatch.config.collector import CollectorMqttConfig, StoreConfig

    store = open_store(url)
    version: Literal["5", "3.1.1"] = "5" if protocol == "5" else "3.1.1"
    cfg = CollectorMqttConfig(port=port, client_id=client_id, protocol=version)
    ing = Ingestor(cfg, StoreConfig(), store)
    gc_settings.for_ingest()
    ing.start()
    if not ing.subscribed.wait(60):
        raise SystemExit("the collector never subscribed")
    while ing.stats.stored["summary"] + ing.stats.duplicates < n:
        time.sleep(0.05)
    if n:
        time.sleep(0.5)  # the last acknowledgements leave
    ing.stop()
    store.close()


def make_session(kind: str, protocol: str, port: int, url: str, client_id: str) -> None:
    """Create the subscriber's persistent session (natively), then leave."""
    if kind == "paho":
        mosquitto_sub = find_tool("mosquitto_sub") or "mosquitto_sub"
        version = ["-V", "mqttv5", "-x", "3600"] if protocol == "5" else ["-V", "mqttv311"]
        subprocess.run([mosquitto_sub, "-h", "127.0.0.1", "-p", str(port), *version,
                        "-q", "1", "-c", "-i", client_id, "-t", TOPICS, "-E"],
                       check=True, timeout=30)
        return
    collector(protocol, port, url, client_id, 0)


def instructions(valgrind: str, out: Path, *args: str) -> int:
    """Instructions the child ``python this-script --consume ARGS`` executed."""
    proc = subprocess.run([valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
                           sys.executable, __file__, "--consume", *args],
                          check=False, capture_output=True, text=True, timeout=3600)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode or not found:
        raise SystemExit(f"callgrind run failed:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def measure(valgrind: str, protocol: str, port: int, tmp: Path, kind: str,
            msgs: list[Msg]) -> float:
    """Instructions per message of ``kind`` (full backlog minus empty backlog)."""
    counts = []
    for backlog in ([], msgs):
        client_id = f"{kind}-{uuid.uuid4().hex[:6]}"
        url = f"sqlite:///{tmp}/{client_id}.db"
        make_session(kind, protocol, port, url, client_id)
        if backlog:
            publish(port, backlog)
        counts.append(instructions(valgrind, tmp / f"{client_id}.cg", kind, protocol,
                                   str(port), str(len(backlog)), url, client_id))
    return (counts[1] - counts[0]) / len(msgs)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--consume":
        kind, protocol, port, n, url, client_id = sys.argv[2:8]
        consume(kind, protocol, int(port), int(n), url, client_id)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--encoding", choices=("msgpack", "json", "v1"), default="msgpack")
    ap.add_argument("--protocol", choices=("5", "3.1.1"), default="5")
    args = ap.parse_args()
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    msgs = messages(args.messages, args.devices, "x" * 32, args.encoding)
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(
            workdir=Path(tmp) / "b", extra_config=["max_queued_messages 1000000"]) as b:
        paho = measure(valgrind, args.protocol, b.port, Path(tmp), "paho", msgs)
        collector = measure(valgrind, args.protocol, b.port, Path(tmp), "collector", msgs)
    size = len(msgs[0][1])
    print(f"{args.messages} summaries ({args.encoding}, {size} bytes each, MQTT "
          f"{args.protocol}), a backlog taken by one subscriber; instructions per message "
          f"(callgrind)")
    print(f"{'':24} {'instructions':>13} {'x collector':>12}")
    print(f"{'paho subscriber':24} {paho:13,.0f} {paho / collector:12.2f}")
    print(f"{'collector -> SQLite':24} {collector:13,.0f} {1.0:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
