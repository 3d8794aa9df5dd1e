"""Help written for users (edgewatch.cli.main, edgewatch.cli.parsing): every command and
subcommand describes itself, every option says what it is for, and global options go
anywhere on the line. The whole parser is walked, so a new command without help fails here."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from edgewatch import __version__
from edgewatch.cli import _parser, main
from edgewatch.cli.parsing import subcommands
from support.paths import REPO

PARSER = _parser()
COMMANDS = [("edgewatch", PARSER), *subcommands(PARSER)]
NAMES = [name for name, _ in COMMANDS]


def _edgewatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgewatch.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_walk_sees_every_level() -> None:
    assert len(COMMANDS) > 30
    for name in ("edgewatch replay", "edgewatch fleet device", "edgewatch alerts set-threshold",
                 "edgewatch profile build", "edgewatch evidence pull"):
        assert name in NAMES


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=NAMES)
def test_every_command_describes_itself_to_users(name: str,
                                                 parser: argparse.ArgumentParser) -> None:
    assert parser.description, f"{name}: no description"
    assert not parser.description.startswith("The ``"), f"{name}: a developer's docstring"
    assert "``" not in parser.description


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=NAMES)
def test_every_option_and_argument_has_help(name: str, parser: argparse.ArgumentParser) -> None:
    undocumented = [action.option_strings or [action.dest] for action in parser._actions
                    if not isinstance(action, (argparse._HelpAction,
                                               argparse._SubParsersAction))
                    and not (action.help or "").strip()]
    assert undocumented == [], name


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=NAMES)
def test_every_subcommand_has_a_summary_in_its_parents_list(
        name: str, parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help for a in action._choices_actions}
            assert set(summaries) == set(action.choices), name
            assert all(summaries.values()), name


@pytest.mark.parametrize("columns", [70, 80, 120])
def test_every_help_fits_the_terminal(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    wide = [(name, line) for name, parser in COMMANDS
            for line in parser.format_help().splitlines() if len(line) > columns]
    assert wide == []


def test_the_top_help_is_for_users() -> None:
    done = _edgewatch("--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: edgewatch ")
    assert "Monitor ONNX vision models on edge devices" in done.stdout
    assert "argument parsing" not in done.stdout and "``" not in done.stdout
    for name in ("check-config", "replay", "show", "fleet", "alerts"):
        assert f"\n    {name} " in done.stdout or f"\n    {name}\n" in done.stdout, name
    assert "edgewatch COMMAND --help" in done.stdout


def test_replay_help_describes_every_option() -> None:
    done = _edgewatch("replay", "--help")
    assert done.returncode == 0
    assert "Run the monitoring pipeline" in done.stdout
    for option in ("--config CONFIG", "--source SOURCE", "--frames START:END", "--fps FPS",
                   "--verbose"):
        assert option in done.stdout, option
    assert "agent's configuration file" in done.stdout


def test_a_nested_command_has_its_own_help() -> None:
    done = _edgewatch("fleet", "device", "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: edgewatch fleet device ")
    assert "Recent windows and drift per feature of one device." in done.stdout


def test_version() -> None:
    done = _edgewatch("--version")
    assert (done.returncode, done.stdout) == (0, f"edgewatch {__version__}\n")


def test_the_version_printed_is_the_packages() -> None:
    """``--version`` prints edgewatch.__version__ (importing nothing); the package's metadata
    must say the same, or read it from there (a dynamic version)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project.get("version", __version__) == __version__
    assert "version" in project or "version" in project.get("dynamic", [])


@pytest.mark.parametrize("argv", [
    ["-v", "fleet", "status", "--config", "c.toml"],
    ["fleet", "-v", "status", "--config", "c.toml"],
    ["fleet", "status", "-v", "--config", "c.toml"],
    ["fleet", "status", "--config", "c.toml", "--verbose"],
])
def test_verbose_goes_anywhere(argv: list[str]) -> None:
    assert PARSER.parse_args(argv).verbose is True


def test_verbose_is_off_unless_given() -> None:
    assert _parser().parse_args(["fleet", "status", "--config", "c.toml"]).verbose is False
    assert _parser().parse_args(["show", "x.jsonl"]).verbose is False


def test_verbose_after_the_command_is_not_a_usage_error() -> None:
    done = _edgewatch("check-config", "--no-model", "missing.toml", "-v")
    assert done.returncode == 2  # the file is missing: a configuration error, not a usage one
    assert done.stderr.startswith("edgewatch: config error: missing.toml: cannot read")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["alerts", "snooze", "--help"])
    assert caught.value.code == 0
    assert "how long, in seconds" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=NAMES)
def test_every_command_takes_verbose(name: str, parser: argparse.ArgumentParser) -> None:
    assert "--verbose" in parser._option_string_actions, name


def test_a_command_line_builds_only_the_command_it_runs() -> None:
    parser = _parser(lazy=True)  # as main() builds it
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    replay, fleet = commands.choices["replay"], commands.choices["fleet"]
    assert "--config" not in replay._option_string_actions  # not built yet
    args = parser.parse_args(["replay", "--config", "a.toml", "--source", "v.avi", "--out",
                              "-", "--frames", "0:10"])
    assert (args.config, args.frames, args.fps) == ("a.toml", "0:10", 0.0)
    assert "--config" in replay._option_string_actions
    assert not any(isinstance(a, argparse._SubParsersAction) for a in fleet._actions)
    complete = _parser()  # the whole tree, for whoever walks it
    [commands] = [a for a in complete._actions if isinstance(a, argparse._SubParsersAction)]
    assert "--config" in commands.choices["replay"]._option_string_actions
