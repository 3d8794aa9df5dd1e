"""The command modules of the CLI, each on its own: ``agent_commands`` (check-config,
--start), ``collector_commands`` (fleet, the alert commands' arguments), ``decode``,
``common`` (signals, exit codes) and ``python -m edgewatch.cli``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewatch import __version__
from edgewatch.cli import _parser
from edgewatch.cli.agent_commands import _parse_start, cmd_check_config
from edgewatch.cli.collector_commands import _alert_command
from edgewatch.cli.common import EXIT_ERROR, EXIT_USAGE, stop_on_signals
from edgewatch.cli.decode import cmd_decode
from edgewatch.collector.store import open_store
from edgewatch.contracts import Status, codec
from edgewatch.errors import ConfigError, EdgewatchError

T0 = 1767225600.0  # 2026-01-01 00:00:00 UTC


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    code: int = args.handler(args)
    return code


# --------------------------------------------------------------------------- agent commands


@pytest.mark.parametrize(("text", "expected"), [
    ("1767225600", T0),
    ("1767225600.5", T0 + 0.5),
    ("2026-01-01T00:00:00Z", T0),
    ("2026-01-01T00:00:00", T0),
    ("2026-01-01T02:00:00+02:00", T0),
])
def test_start_is_epoch_seconds_or_iso_8601_utc_by_default(text: str, expected: float) -> None:
    assert _parse_start(text) == expected


def test_a_bad_start_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="--start: expected ISO 8601 or epoch seconds"):
        _parse_start("tomorrow")


def test_check_config_prints_the_essentials_and_warnings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[device]\nid = "cam-1"\n[window]\nseconds = 1\n')
    assert cmd_check_config(argparse.Namespace(config=str(path), no_model=True)) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok (model - not checked, adapter ssd, window 1 s)\n"
    assert err.startswith("edgewatch: warning: window.seconds (1) x features.max_fps")


# --------------------------------------------------------------------------- collector commands


@pytest.mark.parametrize(("argv", "expected"), [
    (["ack", "a1"], ("ack", {"alert": "a1"})),
    (["snooze", "a1", "600"], ("snooze", {"alert": "a1", "seconds": 600.0})),
    (["enable", "drift", "--device", "cam-1"], ("enable", {"rule": "drift"})),
    (["disable", "drift", "--device", "cam-1"], ("disable", {"rule": "drift"})),
    (["set-threshold", "drift", "3", "--device", "cam-1"],
     ("set-threshold", {"rule": "drift", "threshold": 3.0})),
    (["set-threshold", "drift", "3", "--resolve-threshold", "2", "--device", "cam-1"],
     ("set-threshold", {"rule": "drift", "threshold": 3.0, "resolve_threshold": 2.0})),
    (["rules", "--device", "cam-1"], ("list", {})),
])
def test_alert_subcommands_become_device_commands(argv: list[str],
                                                  expected: tuple[str, Any]) -> None:
    args = _parser().parse_args(["alerts", *argv, "--config", "c.toml"])
    assert _alert_command(args) == expected


@pytest.fixture
def collector_config(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "collector.toml"
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    path.write_text(f'[store]\nurl = "{url}"\n')
    with open_store(url) as store:
        store.ingest("status", "f1", "cam-1",
                     Status(state="offline", device="cam-1", boot_id="b1", time=T0,
                            reason="shutdown"), T0)
    yield path


def test_fleet_status_and_device(collector_config: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "status", "--config", str(collector_config)]) == 0
    out = capsys.readouterr().out
    assert "cam-1" in out and "OFFLINE" in out
    assert out.strip().endswith("1 devices: 0 online, 0 stale, 1 offline; 0 drifting (offline "
                                "devices not counted)")
    assert run(["fleet", "status", "--json", "--config", str(collector_config)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["device"], row["online"]) == ("cam-1", False)
    assert run(["fleet", "device", "cam-1", "--json", "--config", str(collector_config)]) == 0
    assert json.loads(capsys.readouterr().out)["windows"] == []
    with pytest.raises(EdgewatchError, match="unknown device 'cam-9'"):
        run(["fleet", "device", "cam-9", "--config", str(collector_config)])


def test_quarantine_through_the_parser(collector_config: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["quarantine", "list", "--config", str(collector_config)]) == 0
    assert capsys.readouterr().out == "quarantine is empty\n"
    assert run(["quarantine", "purge", "--all", "--config", str(collector_config)]) == 0
    assert capsys.readouterr().out == "purged 0 quarantined messages\n"


# --------------------------------------------------------------------------- decode


def test_decode_prints_each_message_and_fails_on_a_refused_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = Status(state="offline", device="cam-1", boot_id="b1", time=T0, reason="shutdown")
    path = tmp_path / "capture.jsonl"
    path.write_bytes(codec.encode(status, "json") + b"\n" + b'{"schema": "edgewatch.status/1"}\n')
    assert cmd_decode(argparse.Namespace(file=str(path), leaf=None)) == EXIT_ERROR
    out, err = capsys.readouterr()
    assert json.loads(out) == json.loads(codec.encode(status, "json"))
    assert err.startswith(f"edgewatch: {path}:2: rejected (invalid): ")
    single = tmp_path / "status.bin"
    single.write_bytes(codec.encode(status))
    assert run(["decode", str(single), "--leaf", "status"]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "shutdown"
    with pytest.raises(EdgewatchError, match="cannot read"):
        run(["decode", str(tmp_path / "missing.bin")])


# --------------------------------------------------------------------------- common


def test_exit_codes() -> None:
    assert (EXIT_ERROR, EXIT_USAGE) == (1, 2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_set_the_stop_event(signum: int) -> None:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop = threading.Event()
    try:
        stop_on_signals(stop, "stopping the test")
        os.kill(os.getpid(), signum)
        assert stop.wait(5)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


# --------------------------------------------------------------------------- python -m


def test_python_dash_m_runs_the_command(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["edgewatch", "--version"])
    sys.modules.pop("edgewatch.cli.__main__", None)
    with pytest.raises(SystemExit) as caught:
        import edgewatch.cli.__main__  # noqa: F401
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"edgewatch {__version__}\n"
