"""Where a user expects one line, not a traceback: a reader that goes away (``| head``), a
missing optional dependency, Ctrl-C (each in a real process: a real pipe, a real signal), and
every usage error (a malformed value, a missing argument): one line naming it, exit 2."""

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
import pytest

from edgewatch.cli import main
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


# --------------------------------------------------------------------------- usage errors

CONFIG = ["--config", "c.toml"]
USAGE_ERRORS = {  # id -> (argv, what the one line names)
    "frames-dash": (["replay", *CONFIG, "--source", "v.avi", "--out", "o", "--frames", "10-20"],
                    "argument --frames: expected a frame range START:END"),
    "frames-backwards": (["profile", "build", *CONFIG, "--source", "v.avi", "--out", "o",
                          "--frames", "20:10"], "argument --frames"),
    "start": (["replay", *CONFIG, "--source", "v", "--out", "o", "--start", "yesterday"],
              "argument --start: expected ISO 8601 or epoch seconds, got 'yesterday'"),
    "fps": (["replay", *CONFIG, "--source", "v", "--out", "o", "--fps", "-1"],
            "argument --fps: expected a finite number of at least 0, got '-1'"),
    "drain-timeout": (["replay", *CONFIG, "--source", "v", "--out", "o", "--publish",
                       "--drain-timeout", "soon"], "argument --drain-timeout"),
    "windows": (["fleet", "device", "cam-1", *CONFIG, "--windows", "0"],
                "argument --windows: expected an integer of at least 1, got '0'"),
    "snooze": (["alerts", "snooze", "a1", "-5", *CONFIG], "argument seconds"),
    "threshold": (["alerts", "set-threshold", "drift", "nan", "--device", "d", *CONFIG],
                  "argument threshold: expected a finite number, got 'nan'"),
    "evidence-limit": (["evidence", "list", "cam-1", *CONFIG, "--limit", "900"],
                       "argument --limit: expected an integer from 1 to 500, got '900'"),
    "chunk": (["model", "push", "--device", "d", "--model", "m.onnx", *CONFIG, "--chunk-kib",
               "1000"], "argument --chunk-kib"),
    "timeout": (["model", "status", *CONFIG, "--timeout", "0"],
                "argument --timeout: expected a finite number above 0, got '0'"),
    "since": (["report", "--out", "r.html", *CONFIG, "--device", "d", "--since", "1 May"],
              "argument --since"),
    "span": (["reference", "accept", "--device", "d", *CONFIG, "--windows", "200..100"],
             "argument --windows: '200..100': TO must be after FROM"),
    "kind": (["check-config", "c.toml", "--kind", "router"], "argument --kind: invalid choice"),
    "missing": (["replay", "--source", "v"], "the following arguments are required"),
    "command": (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    "no-command": ([], "the following arguments are required: COMMAND"),
}


@pytest.mark.parametrize(("argv", "named"), USAGE_ERRORS.values(), ids=list(USAGE_ERRORS))
def test_a_usage_error_is_one_line_and_exit_2(argv: list[str], named: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    out, err = capsys.readouterr()
    assert caught.value.code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert named in err
    assert err.startswith("edgewatch") and "error: " in err and "--help)" in err


def test_a_malformed_value_in_a_real_process() -> None:
    done = subprocess.run(_edgewatch("replay", "--config", "c.toml", "--source", "v.avi",
                                     "--out", "o.jsonl", "--frames", "10-20"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr == ("edgewatch replay: error: argument --frames: expected a frame range "
                           "START:END with 0 <= START < END, e.g. 0:400, got '10-20' (see: "
                           "edgewatch replay --help)\n")
