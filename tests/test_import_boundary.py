"""The collector side imports nothing of the agent: a host with ``edgewatch[collector]`` only
(no opencv, onnxruntime or psutil) can run every module of
``edgewatch.collector`` and ``edgewatch.contracts`` and every collector or operator command.

Each check runs in a fresh interpreter in which the agent's third-party packages cannot be
imported at all (an import hook refuses them, as a collector host would), so an import
anywhere on the path fails the check, and afterwards neither those packages nor the agent's
own modules may be loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from support.paths import REPO

SRC = REPO / "src"
AGENT_PACKAGES = ("cv2", "onnxruntime", "psutil")
"""Installed by the ``agent`` extra only."""
AGENT_MODULES = ("agent",)
"""Packages of ``edgewatch`` that belong to the agent."""
AGENT_COMMANDS = {"check-config", "profile", "replay", "show", "run"}
"""Every other command of ``edgewatch.cli`` is a collector or operator command."""

CHILD = textwrap.dedent('''
    import contextlib, importlib, io, json, pkgutil, sys

    BLOCKED = set(json.loads(sys.argv[1]))
    attempts = []

    class Refuse:
        """The agent's packages are not installed on a collector host."""

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                attempts.append(name)
                raise ModuleNotFoundError(f"No module named {name!r} (collector host)")
            return None

    sys.meta_path.insert(0, Refuse())
    failures = {}

    def step(what, fn):
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = fn()
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:
            failures[what] = f"{type(exc).__name__}: {exc}"

    for name in json.loads(sys.argv[5]):
        step(name, lambda name=name: importlib.import_module(name) and None)
    for package in json.loads(sys.argv[2]):
        root = importlib.import_module(package)
        step(package, lambda: None)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            step(info.name, lambda name=info.name: importlib.import_module(name) and None)

    cli = {}
    step("edgewatch.cli", lambda: cli.update(main=importlib.import_module("edgewatch.cli").main))
    for argv in json.loads(sys.argv[3]) if cli else []:
        step(" ".join(argv), lambda argv=argv: cli["main"](argv))

    loaded = sorted(m for m in sys.modules
                    if m.split(".")[0] in BLOCKED
                    or m.startswith("edgewatch.") and m.split(".")[1] in json.loads(sys.argv[4]))
    print(json.dumps({"failures": failures, "loaded": loaded, "attempts": attempts}))
''')


def _leaf_commands() -> list[list[str]]:
    """Every collector or operator command path of the CLI (``["alerts", "ack"]``...)."""
    import argparse

    from edgewatch.cli import _parser

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return [prefix]
        return [path for name, sub in subs[0].choices.items()
                for path in walk(sub, [*prefix, name])]

    return [p for p in walk(_parser(), []) if p[0] not in AGENT_COMMANDS]


def _run_child(packages: list[str], argvs: list[list[str]],
               first: tuple[str, ...] = ()) -> dict[str, object]:
    """Import every module of ``packages`` and run ``edgewatch.cli.main`` on each of
    ``argvs`` (after importing the modules ``first``) in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(AGENT_PACKAGES), json.dumps(packages),
         json.dumps(argvs), json.dumps(AGENT_MODULES), json.dumps(first)],
        capture_output=True, text=True, timeout=180, env=env, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _assert_clean(result: dict[str, object]) -> None:
    assert result["failures"] == {}, "fails without the agent's packages"
    assert result["loaded"] == [], "agent modules or packages loaded"
    assert result["attempts"] == [], "tried to import an agent package"


def test_the_collector_commands_are_known() -> None:
    commands = {p[0] for p in _leaf_commands()}
    assert {"collector", "fleet", "alerts"} <= commands  # the walk found them


def test_collector_and_contracts_modules_import_without_the_agent() -> None:
    _assert_clean(_run_child(["edgewatch.collector", "edgewatch.contracts"], []))


def test_collector_and_operator_commands_run_without_the_agent(tmp_path: Path) -> None:
    helps = [[*path, "--help"] for path in _leaf_commands()]
    config = tmp_path / "collector.toml"
    # a broker nobody listens on: commands that need one fail quickly, as an error message
    config.write_text(f'[mqtt]\nport = 9\n[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
                      "[http]\nport = 0\n", encoding="utf-8")
    c = ["--config", str(config)]
    runs = [["fleet", "status", *c], ["fleet", "status", "--json", *c],
            ["fleet", "device", "cam-1", *c], ["alerts", "list", *c],
            ["alerts", "list", "--all", "--json", *c],
            ["alerts", "ack", "a1", "--device", "cam-1", "--fleet", "f", "--timeout", "1", *c]]
    if any(p[0] == "quarantine" for p in _leaf_commands()):
        runs.append(["quarantine", "list", *c])
    result = _run_child([], [*helps, *runs])
    _assert_clean(result)


def test_the_check_can_fail() -> None:
    """An agent module imported on the way is reported, and so is one needing opencv."""
    rules, image = "edgewatch.agent.alerts.rule_metrics", "edgewatch.agent.measure.image"
    result = _run_child([], [["fleet", "--help"]], first=(rules, image))
    assert rules in result["loaded"]  # type: ignore[operator]
    assert "ModuleNotFoundError" in result["failures"][image]  # type: ignore[index]
    assert "cv2" in result["attempts"]  # type: ignore[operator]
