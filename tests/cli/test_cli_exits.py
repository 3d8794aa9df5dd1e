"""Where a user expects one line, not a traceback: a reader that goes away (``| head``), a
missing optional dependency, Ctrl-C. Each in a real process: a real pipe, a real signal."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edgewatch.cli.main import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED
from edgewatch.collector.store import Item, open_store
from edgewatch.contracts import codec
from support.broker import MosquittoBroker, free_port
from support.paths import DATA

EXAMPLE = json.loads((DATA / "summary-example.json").read_text(encoding="utf-8"))


def _edgewatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgewatch.cli", *args]


def _fleet(tmp_path: Path, devices: int) -> Path:
    """A collector configuration whose SQLite store knows ``devices`` devices."""
    db = tmp_path / "collector.db"
    items = []
    for d in range(devices):
        payload = copy.deepcopy(EXAMPLE)
        payload.update(device=f"cam-{d:04d}", boot_id="b1", seq=1)
        raw = json.dumps(payload).encode()
        items.append(Item("summary", "f1", f"cam-{d:04d}", codec.decode("summary", raw),
                          time.time(), f"edgewatch/v1/f1/cam-{d:04d}/summary", raw))
    with open_store(f"sqlite:///{db}") as store:
        store.ingest_many(items)
    config = tmp_path / "collector.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n[http]\nport = 0\n', encoding="utf-8")
    return config


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path) -> None:
    config = _fleet(tmp_path, 300)  # far more than a pipe holds (64 KiB)
    proc = subprocess.Popen(_edgewatch("fleet", "status", "--json", "--config", str(config)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().strip() == b"["  # what `| head -1` reads, then it exits
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == EXIT_BROKEN_PIPE
    assert err == ""  # no BrokenPipeError traceback, no "Exception ignored"


BLOCKING_CHILD = textwrap.dedent('''
    import sys

    class NotInstalled:  # as on a host where only the base package is installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("prometheus_client", "psycopg"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    from edgewatch.cli import main
    sys.exit(main(sys.argv[1:]))
''')


def test_a_missing_extra_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(f'[mqtt]\nport = {free_port()}\n[store]\nurl = '
                      f'"sqlite:///{tmp_path / "c.db"}"\n[http]\nport = {free_port()}\n',
                      encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", BLOCKING_CHILD, "collector", "--config",
                           str(config)], capture_output=True, text=True, timeout=60,
                          check=False)
    lines = [line for line in done.stderr.splitlines() if not line.startswith("20")]  # logs
    assert lines == ["edgewatch: edgewatch collector needs the collector extra: pip install "
                     "'edgewatch[collector]' (missing module prometheus_client)"], done.stderr
    assert done.returncode == 2  # a setup error: systemd does not restart it


def test_ctrl_c_is_one_line_and_exit_130(broker: MosquittoBroker, tmp_path: Path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(f"[mqtt]\nport = {broker.port}\n[store]\n"
                      f'url = "sqlite:///{tmp_path / "c.db"}"\n', encoding="utf-8")
    silent = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    silent.connect("127.0.0.1", broker.port)  # a device that takes commands, never answers
    silent.subscribe("edgewatch/v1/f1/mute/cmd/#", qos=1)
    silent.loop_start()
    time.sleep(0.5)
    proc = subprocess.Popen(_edgewatch("alerts", "enable", "drift", "--device", "mute",
                                       "--fleet", "f1", "--timeout", "60", "--config",
                                       str(config)), stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    silent.loop_stop()
    silent.disconnect()
    assert proc.returncode == EXIT_INTERRUPTED, err
    lines = [line for line in err.splitlines() if not line.startswith("20")]
    assert lines == ["edgewatch: interrupted"], err
