"""``edgewatch check-config`` checks both kinds of configuration: the agent's and the
collector's, told apart by their sections (``--kind`` forces one). An error is one line
naming the key, exit status 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgewatch.cli import main
from edgewatch.cli.agent_commands import config_kind
from edgewatch.errors import ConfigError
from support.paths import REPO


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check-config", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgewatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_collector_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    config = REPO / "configs" / "collector.toml"
    code, out, err = check(capsys, str(config))
    assert (code, err) == (0, "")
    db = REPO / "configs" / "edgewatch-collector.db"
    assert out == (f"{config}: ok (collector: store sqlite:///{db}, broker 127.0.0.1:1883, "
                   "/metrics on 127.0.0.1:9108)\n")


def test_the_shipped_agent_configuration_without_its_model(
        capsys: pytest.CaptureFixture[str]) -> None:
    config = REPO / "configs" / "agent.toml"
    code, out, _ = check(capsys, "--no-model", str(config))
    assert code == 0
    assert out.startswith(f"{config}: ok (model ") and "not checked, adapter ssd" in out


def test_a_collector_error_names_the_key(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[store]\nbatch_size = 0\n")
    code, out, err = check(capsys, str(path))
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.startswith("edgewatch: config error: ")
    assert "store.batch_size" in err


def test_a_password_in_the_store_url_is_not_printed(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[store]\nurl = "postgresql://ew:s3cret@db.example:5432/ew"\n'
                           "[http]\nport = 0\n")
    code, out, _ = check(capsys, str(path))
    assert code == 0
    assert "s3cret" not in out
    assert "store postgresql://ew:***@db.example:5432/ew" in out and "no /metrics" in out


@pytest.mark.parametrize(("sections", "kind"), [
    ({"model": {"path": "m.onnx"}}, "agent"),
    ({"store": {"url": "sqlite:///c.db"}}, "collector"),
    ({"mqtt": {"host": "broker"}, "retention": {"raw_days": 3}}, "collector"),
    ({"mqtt": {"host": "broker"}}, "agent"),  # shared sections alone: the agent, as before
    ({}, "agent"),
])
def test_the_kind_is_told_by_the_sections(sections: dict[str, Any], kind: str) -> None:
    assert config_kind(sections, "x.toml") == kind


def test_a_file_with_both_kinds_of_sections(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[model]\npath = 'm.onnx'\n[store]\nurl = 'sqlite:///c.db'\n")
    with pytest.raises(ConfigError, match=r"agent sections \(model\) and collector sections "
                                          r"\(store\)"):
        config_kind({"model": {}, "store": {}}, str(path))
    code, _, err = check(capsys, str(path))
    assert code == 2 and len(err.splitlines()) == 1


def test_kind_forces_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[store]\nurl = 'sqlite:///c.db'\n")
    code, _, err = check(capsys, "--kind", "agent", str(path))
    assert code == 2
    assert err.startswith("edgewatch: config error: store: unknown key")
    code, out, _ = check(capsys, "--kind", "collector", str(path))
    assert code == 0 and ": ok (collector: " in out
