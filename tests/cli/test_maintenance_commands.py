"""The model and reference commands (edgewatch.cli.maintenance_commands) on a real, empty
collector store: what they answer before any device is known. Their work with devices is
tested end to end in tests/collector (test_model_push, test_reference_accept)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from edgewatch.cli import main
from edgewatch.cli.maintenance_commands import cmd_reference


@pytest.fixture
def collector_config(tmp_path: Path) -> Path:
    config = tmp_path / "collector.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[http]\nport = 0\n',
                      encoding="utf-8")
    return config


def test_an_empty_reference_history(collector_config: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(config=str(collector_config), reference_command="history",
                              device=None, json=False, by=None)
    assert cmd_reference(args) == 0
    assert capsys.readouterr().out == "no reference changes recorded\n"
    assert main(["reference", "history", "--json", "--config", str(collector_config)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_reference_for_an_unknown_device_is_one_line(
        collector_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "reference.json"
    profile.write_text("{}", encoding="utf-8")
    code = main(["reference", "push", "--device", "cam-9", "--reference", str(profile),
                 "--by", "alice", "--config", str(collector_config)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == ["edgewatch: error: the collector does not know device "
                                "'cam-9': give its fleet"]
