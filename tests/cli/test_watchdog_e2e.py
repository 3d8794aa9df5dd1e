"""``edgewatch run`` and ``edgewatch collector`` under a stand-in systemd: READY=1, then
WATCHDOG=1 while they make progress, and no more pings when they hang for real (a frame read
blocked on a FIFO nobody writes to; a store write blocked on a locked SQLite database), so
that systemd would restart them. A camera that is down is reconnecting, which is progress."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edgewatch.cli import main
from support.broker import MosquittoBroker, free_port
from support.footage import image_folder
from support.notify import NotifySocket
from support.paths import DATA

WATCHDOG_USEC = "1000000"  # pings every 0.5 s


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


def _start(args: list[str], notify: NotifySocket, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NOTIFY_SOCKET=notify.address, WATCHDOG_USEC=WATCHDOG_USEC)
    return subprocess.Popen([sys.executable, "-m", "edgewatch.cli", *args], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def _agent_config(tmp_path: Path, assets: Path, uri: str, reference: Path) -> Path:
    models = assets / "models"
    path = tmp_path / "agent.toml"
    path.write_text(f"""
[device]
id = "cam-watchdog"
[model]
path = "{models / 'ssdlite_mobilenet_v2_coco.onnx'}"
labels = "{models / 'coco_labels.txt'}"
intra_op_threads = 1
[source]
uri = "{uri}"
fps = 10.0
reconnect_initial_s = 0.3
reconnect_max_s = 0.6
[window]
seconds = 1.0
[drift]
min_frames = 1
[reference]
path = "{reference}"
[alerts]
state_path = "{tmp_path / 'alerts.db'}"
[outbox]
path = "{tmp_path / 'outbox.db'}"
[output]
jsonl = "{tmp_path / 'windows.jsonl'}"
[resources]
enabled = false
""", encoding="utf-8")
    return path



@pytest.fixture(scope="module")
def recorded(assets: Path, vtest: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, Path]:
    """30 frames of vtest.avi as images, and a reference profile built from them."""
    tmp = tmp_path_factory.mktemp("recorded")
    images = image_folder(vtest, tmp / "frames", 30)
    reference = tmp / "reference.json"
    config = _agent_config(tmp, assets, str(images), reference)
    assert main(["profile", "build", "--config", str(config), "--source", str(images),
                 "--out", str(reference)]) == 0
    return images, reference


def _pings(notify: NotifySocket, since: float, until: float = float("inf")) -> list[float]:
    return [t for t, _ in notify.with_key("WATCHDOG", since) if t <= until]


def test_the_agent_pings_while_frames_come_and_stops_when_a_read_hangs(
        assets: Path, recorded: tuple[Path, Path], tmp_path: Path,
        notify: NotifySocket) -> None:
    images = tmp_path / "frames"
    shutil.copytree(recorded[0], images)
    config = _agent_config(tmp_path, assets, str(images), recorded[1])
    os.mkfifo(images / "0030.jpg")  # the 31st frame: a read that blocks, as a hung camera
    proc = _start(["run", "--config", str(config)], notify, tmp_path / "agent.log")
    try:
        ready = notify.wait_for("READY", "1", timeout=120)
        stalled = notify.wait_for("STATUS", "stalled: no progress", timeout=60, since=ready)
        assert proc.poll() is None, "the agent is alive (and mute)"
        assert len(_pings(notify, ready, stalled)) >= 3  # 3 s of frames, a ping every 0.5 s
        assert any(s.startswith(f"monitoring {images}: ") and " frames" in s
                   for s in notify.statuses())
        time.sleep(2.0)
        assert _pings(notify, stalled) == []  # hung: systemd would restart it
    finally:
        _stop(proc)


def test_an_agent_whose_camera_is_down_is_reconnecting_not_hung(
        assets: Path, recorded: tuple[Path, Path], tmp_path: Path,
        notify: NotifySocket) -> None:
    uri = f"rtsp://viewer:s3cret@127.0.0.1:{free_port()}/live"  # nobody listens there
    config = _agent_config(tmp_path, assets, uri, recorded[1])
    proc = _start(["run", "--config", str(config)], notify, tmp_path / "agent.log")
    try:
        ready = notify.wait_for("READY", "1", timeout=120)  # running, though without frames
        time.sleep(2.5)
        assert len(_pings(notify, ready)) >= 3
        statuses = notify.statuses()
        assert any(s.startswith("reconnecting rtsp://127.0.0.1:") for s in statuses), statuses
        assert not any("s3cret" in s for s in statuses)
    finally:
        _stop(proc)


def _publish_summary(port: int, seq: int) -> None:
    payload = dict(json.loads((DATA / "summary-example.json").read_text(encoding="utf-8")),
                   device="cam-wd", boot_id="boot-1", seq=seq)
    payload["window"] = {"start": 1000.0 + 10 * seq, "end": 1010.0 + 10 * seq, "windows": 1}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="wd-sim",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish("edgewatch/v1/f1/cam-wd/summary", json.dumps(payload).encode(),
                   qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def _stored(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        query = "SELECT count(*) FROM messages WHERE kind = 'summary'"
        return int(conn.execute(query).fetchone()[0])


def test_the_collector_pings_while_it_stores_and_stops_when_the_store_hangs(
        broker: MosquittoBroker, tmp_path: Path, notify: NotifySocket) -> None:
    db = tmp_path / "collector.db"
    config = tmp_path / "collector.toml"
    config.write_text(f'[mqtt]\nport = {broker.port}\nclient_id = "collector-wd"\n'
                      f'[store]\nurl = "sqlite:///{db}"\n[http]\nport = {free_port()}\n',
                      encoding="utf-8")
    proc = _start(["collector", "--config", str(config)], notify, tmp_path / "collector.log")
    try:
        ready = notify.wait_for("READY", "1", timeout=60)
        assert any(s.startswith("connecting to the broker at") for s in notify.statuses())
        _publish_summary(broker.port, 1)
        notify.wait_for("STATUS", "1 stored", timeout=30)
        deadline = time.monotonic() + 10
        while len(_pings(notify, ready)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_pings(notify, ready)) >= 4  # a ping every 0.5 s
        # The store hangs: another process holds the database's write lock, so the write
        # waits (busy timeout: 30 s) while the message waits in the queue.
        lock = sqlite3.connect(db, timeout=5, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            _publish_summary(broker.port, 2)
            stalled = notify.wait_for("STATUS", "stalled: no progress", timeout=20)
            time.sleep(1.5)
            assert _pings(notify, stalled) == []
            assert proc.poll() is None
        finally:
            lock.execute("COMMIT")
            lock.close()
        released = time.monotonic()
        notify.wait_for("WATCHDOG", "1", timeout=20, since=released)  # working again
        assert _stored(db) == 2
    finally:
        _stop(proc)
