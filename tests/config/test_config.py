"""The typed configuration tree: every key documented, unknown keys and bad values rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgewatch.cli import main
from edgewatch.config.agent import AgentConfig, AlertsConfig, load_config, parse_config
from edgewatch.config.typed import describe
from edgewatch.errors import ConfigError
from support.paths import REPO


def test_example_config_loads_and_shows_every_key() -> None:
    cfg = load_config(REPO / "configs" / "agent.toml")
    assert cfg.model.adapter == "ssd"
    text = (REPO / "configs" / "agent.toml").read_text()
    for field in describe(AgentConfig):
        section, _, leaf = field.key.rpartition(".")
        if field.type.startswith("list of tables"):
            assert f"[[{field.key}]]" in text, field.key
            continue
        table = f"[[{section[:-2]}]]" if section.endswith("[]") else f"[{section}]"
        assert table in text, field.key
        assert f"\n{leaf} = " in text or f"\n# {leaf} = " in text, field.key


def test_example_rules_are_the_defaults() -> None:
    cfg = load_config(REPO / "configs" / "agent.toml")
    assert cfg.alerts.rules == AlertsConfig().rules


def test_every_key_has_documentation() -> None:
    for field in describe(AgentConfig):
        assert len(field.doc) > 10, field.key


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[model]\npath = "m.onnx"\n[source]\nuri = "0"\n')
    cfg = load_config(tmp_path / "a.toml")
    assert cfg.model.path == str(tmp_path / "m.onnx")
    assert cfg.source.uri == "0"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"modle": {}}, "modle: unknown key"),
        ({"model": {"preprocess": {"layuot": "NCHW"}}}, "model.preprocess.layuot: unknown key"),
        ({"model": {"adapter": "detr"}}, "model.adapter: expected one of 'ssd'"),
        ({"window": {"seconds": 0}}, "window.seconds: expected a value >= 0.1"),
        ({"window": {"seconds": "10"}}, "window.seconds: expected float, got str"),
        ({"features": {"every_nth": True}}, "features.every_nth: expected int, got bool"),
        ({"model": {"postprocess": {"score_threshold": 1.5}}},
         "score_threshold: expected a value <= 1"),
        ({"model": {"preprocess": {"std": [1.0, 0.0, 1.0]}}}, "std values must be > 0"),
        ({"model": {"preprocess": {"width": 64}}}, "width and height must both be set"),
        ({"model": {"providers": "CPU"}}, "model.providers: expected a list"),
        ({"window": 5}, "window: expected a table"),
    ],
)
def test_invalid_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(data)


def test_check_config_warns_when_windows_cannot_get_a_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short.toml"
    short.write_text('[window]\nseconds = 2.0\n')  # at most 5 measured frames at 2.5 fps
    assert main(["check-config", "--no-model", str(short)]) == 0
    err = capsys.readouterr().err
    assert "warning: window.seconds (2) x features.max_fps (2.5) allows at most 5" in err
    assert "drift.min_frames (10)" in err
    short.write_text('[window]\nseconds = 2.0\n[features]\nmax_fps = 0.0\n')
    assert main(["check-config", "--no-model", str(short)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[window]\nseconds = 5.0\n')
    assert main(["check-config", "--no-model", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[window]\nsecond = 5.0\n')
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "window.second: unknown key" in err
    broken = tmp_path / "broken.toml"
    broken.write_text("[window\n")
    assert main(["check-config", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err
