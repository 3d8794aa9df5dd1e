"""End to end: agents publish through a real broker into the collector's store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edgewatch.cli import main
from edgewatch.collector.service import CollectorService
from edgewatch.collector.store import open_store
from support.broker import MosquittoBroker
from support.paths import DATA
from support.waiting import wait_until

EXAMPLE = json.loads((DATA / "summary-example.json").read_text())




def test_replay_publishes_into_the_collector(broker: MosquittoBroker, store_url: str,
                                             assets: Path, vtest: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    collector_toml = tmp_path / "collector.toml"
    client_id = f"c-{uuid.uuid4().hex[:6]}"
    collector_toml.write_text(f'[mqtt]\nport = {broker.port}\nclient_id = "{client_id}"\n'
                              f'[store]\nurl = "{store_url}"\n[http]\nport = 0\n')
    from edgewatch.config.collector import load_collector_config

    service = CollectorService(load_collector_config(collector_toml))
    service.start()
    wait_until(lambda: service.ingestor.stats.connected, 10, "collector connection")
    agent_toml = tmp_path / "agent.toml"
    agent_toml.write_text(
        f'[device]\nid = "cam-7"\nfleet = "depot"\n'
        f'[model]\npath = "{assets}/models/ssdlite_mobilenet_v2_coco.onnx"\n'
        f'labels = "{assets}/models/coco_labels.txt"\n[window]\nseconds = 2.0\n'
        '[features]\nmax_fps = 0.0\n'  # 2-s windows: measure every frame
        f'[mqtt]\nenabled = true\nport = {broker.port}\n'
        f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n')
    ref = tmp_path / "ref.json"
    assert main(["profile", "build", "--config", str(agent_toml), "--source", str(vtest),
                 "--frames", "0:100", "--out", str(ref)]) == 0
    assert main(["replay", "--config", str(agent_toml), "--source", str(vtest), "--frames",
                 "0:200", "--reference", str(ref), "--out", str(tmp_path / "s.jsonl"),
                 "--publish", "--start", "1767225600"]) == 0
    store = service.store
    wait_until(lambda: store.count("summary") == 10, 20, "10 summaries in the store")
    wait_until(lambda: not store.devices()[0].online, 10, "the clean shutdown status")
    service.close()
    with open_store(store_url) as s:
        keys = s.keys("summary")
        assert len(keys) == len(set(keys)) == 10
        [dev] = s.devices()
        assert (dev.device, dev.fleet, dev.summaries, dev.gaps) == ("cam-7", "depot", 10, 0)
        assert dev.manifest is not None
        assert dev.manifest.reference_id == json.loads(ref.read_text())["id"]
        assert dev.last_window_end == 1767225600.0 + 20.0
    capsys.readouterr()
    assert main(["fleet", "status", "--config", str(collector_toml)]) == 0
    table = capsys.readouterr().out
    assert "cam-7" in table and "OFFLINE" in table and "1 devices" in table
    assert main(["fleet", "device", "cam-7", "--config", str(collector_toml), "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert len(view["windows"]) == 10 and "brightness" in view["windows"][0]["features"]


def simulated(device: int, seq: int, boot: str) -> tuple[str, bytes]:
    payload = dict(EXAMPLE, device=f"sim-{device:02d}", boot_id=boot, seq=seq)
    payload["window"] = {"start": 1000.0 + 10 * seq, "end": 1010.0 + 10 * seq, "windows": 1}
    return f"edgewatch/v1/sim/sim-{device:02d}/summary", json.dumps(payload).encode()


def publish_fleet(port: int, devices: int, per_device: int) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-sim",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for seq in range(per_device):
        for d in range(devices):
            infos.append(client.publish(*simulated(d, seq, f"boot-{d}"), qos=1))
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


def start_collector(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "edgewatch.cli", "collector", "--config",
                             str(config)], stdout=log.open("ab"), stderr=subprocess.STDOUT)


def second_processes(pid: int) -> list[Any]:
    """The ingest's second processes of collector ``pid`` (psutil processes)."""
    import psutil

    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


@pytest.mark.parametrize("worker", [False, True], ids=["one process", "worker_process"])
def test_two_collectors_share_the_load_and_survive_a_kill(
        broker_factory: Callable[..., MosquittoBroker], pg_url: str, tmp_path: Path,
        worker: bool) -> None:
    """With ``worker`` the killed collector decodes and stores in a second process: killing
    its own process (SIGKILL, no goodbye) leaves no second process behind."""
    configs = []
    # The default broker queue (1000 messages per client) is too small for a collector that
    # acknowledges after each database commit while 5,000 messages arrive in a burst.
    broker = broker_factory(extra_config=["max_queued_messages 100000"])
    broker.start()
    for name in ("a", "b"):
        cfg = tmp_path / f"collector-{name}.toml"
        cfg.write_text(f'[mqtt]\nport = {broker.port}\nclient_id = "collector-{name}"\n'
                       f'shared_group = "collectors"\n[store]\nurl = "{pg_url}"\n'
                       f'worker_process = {"true" if worker and name == "a" else "false"}\n'
                       f'[http]\nport = 0\n')
        configs.append(cfg)
    procs = [start_collector(c, tmp_path / f"{c.stem}.log") for c in configs]
    store = open_store(pg_url)
    try:
        time.sleep(2.0)  # both subscribed
        sender = threading.Thread(target=publish_fleet, args=(broker.port, 50, 100))
        sender.start()
        wait_until(lambda: store.count("summary") >= 1500, 60, "1500 stored")
        orphans = second_processes(procs[0].pid)
        assert len(orphans) == (1 if worker else 0)
        procs[0].send_signal(signal.SIGKILL)  # mid-stream, no goodbye
        procs[0].wait(10)
        wait_until(lambda: not any(o.is_running() and o.status() != "zombie"
                                   for o in orphans), 20, "the second process gone too")
        time.sleep(1.0)
        procs[0] = start_collector(configs[0], tmp_path / "collector-a.log")
        sender.join(120)
        wait_until(lambda: store.count("summary") >= 5000, 120, "all 5000 stored")
        keys = store.keys("summary")
        assert len(keys) == len(set(keys)) == 5000
        expected = {(f"sim-{d:02d}", f"boot-{d}", s) for d in range(50) for s in range(100)}
        assert set(keys) == expected
        assert all(d.gaps == 0 and d.summaries == 100 for d in store.devices())
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        store.close()
    logs = "".join((tmp_path / f"{c.stem}.log").read_text() for c in configs)
    assert "Traceback" not in logs
