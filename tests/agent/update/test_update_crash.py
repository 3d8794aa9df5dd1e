"""SIGKILL during the shadow and right after the commit (a child process running the
lifecycle, killed, started again): the device comes back on a working model and the state
is consistent."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewatch.agent.update.files import ModelStore
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import AgentConfig

CHILD = Path(__file__).resolve().parents[2] / "support" / "update_crash_child.py"


class Child:
    def __init__(self, workdir: Path, *args: str) -> None:
        env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, str(CHILD), str(workdir), *args],
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_for(self, prefix: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} line; saw {self.seen}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def finish(self) -> int:
        return self.proc.wait(60)


@pytest.fixture
def workdir(tmp_path: Path, ssd_reference: ReferenceProfile) -> Iterator[Path]:
    ssd_reference.save(tmp_path / "reference.json")
    yield tmp_path


def _state(workdir: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((workdir / "models" / "state.json").read_text())
    return data


def test_killed_during_the_shadow_the_shadow_starts_again(
        workdir: Path, ssd_config: AgentConfig) -> None:
    base = ssd_config.model.path
    child = Child(workdir, "--stage", base)
    assert child.wait_for("ENGINE") == f"ENGINE {base}"
    child.wait_for("STATE shadow")
    child.kill()
    assert _state(workdir)["state"] == "shadow"
    assert ModelStore(workdir / "models").current() == (None, None)  # nothing switched
    again = Child(workdir, "--soak", "1.0")
    assert again.wait_for("ENGINE") == f"ENGINE {base}"  # the working model
    again.wait_for("STATE received")  # the staged files are intact: shadowed again
    assert again.wait_for("SETTLED") == "SETTLED done"
    assert again.finish() == 0
    current, _ = ModelStore(workdir / "models").current()
    assert current is not None and current.intact() is None
    assert _state(workdir)["state"] == "done"


def _killed_after_commit(workdir: Path, base: str) -> str:
    child = Child(workdir, "--stage", base)
    child.wait_for("STATE committed")
    child.kill()
    current, previous = ModelStore(workdir / "models").current()
    assert current is not None and previous is None
    assert _state(workdir)["state"] in ("committed", "soaking")
    return str(current.model)


def test_killed_right_after_the_commit_the_soak_resumes_on_the_committed_model(
        workdir: Path, ssd_config: AgentConfig) -> None:
    committed = _killed_after_commit(workdir, ssd_config.model.path)
    again = Child(workdir, "--soak", "1.0")
    assert again.wait_for("ENGINE") == f"ENGINE {committed}"
    again.wait_for("STATE soaking")
    assert again.wait_for("SETTLED") == "SETTLED done"
    assert again.finish() == 0
    assert _state(workdir)["state"] == "done"


def test_killed_after_the_commit_with_damaged_files_it_rolls_back(
        workdir: Path, ssd_config: AgentConfig) -> None:
    committed = _killed_after_commit(workdir, ssd_config.model.path)
    Path(committed).write_bytes(Path(committed).read_bytes()[:1000])  # a torn copy
    again = Child(workdir, "--soak", "1.0")
    assert again.wait_for("ENGINE") == f"ENGINE {ssd_config.model.path}"
    assert again.wait_for("SETTLED") == "SETTLED rolled_back"
    assert again.finish() == 0
    state = _state(workdir)
    assert state["state"] == "rolled_back"
    assert "incomplete" in str(state["reason"])
    assert ModelStore(workdir / "models").current() == (None, None)
