"""The README runs: its Python blocks execute on the real model and footage, and every
command line it shows names a command the CLI has."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from support.paths import REPO

README = REPO / "README.md"


def blocks(language: str) -> list[str]:
    """The README's fenced blocks opened with ```language (``""``: plain fences)."""
    found: list[str] = []
    current: list[str] | None = None
    kind = ""
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if current is None:
                current, kind = [], line[3:].strip()
            else:
                if kind == language:
                    found.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return found


def edgewatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgewatch.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=600, check=False)


def test_the_library_snippet_runs_on_the_demo_files(tmp_path: Path, assets: Path) -> None:
    (python_block,) = [b for b in blocks("python") if "AppMonitor" in b]
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    (tmp_path / "assets").symlink_to(assets)
    (tmp_path / "out" / "demo").mkdir(parents=True)
    built = edgewatch("profile", "build", "--config", "configs/demo.toml", "--source",
                      "assets/video/vtest.avi", "--frames", "0:100",
                      "--out", "out/demo/reference.json", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    script = tmp_path / "snippet.py"
    script.write_text(python_block, encoding="utf-8")
    ran = subprocess.run([sys.executable, str(script)], cwd=tmp_path, text=True,
                         capture_output=True, timeout=600, check=False)
    assert ran.returncode == 0, ran.stderr
    lines = (tmp_path / "out" / "library.jsonl").read_text(encoding="utf-8").splitlines()
    summaries = [json.loads(line) for line in lines]
    assert summaries, "the snippet wrote no window"
    seen = sum(s["frames"]["seen"] for s in summaries)
    assert seen == 795  # every frame of vtest.avi went through the wrapped session
    assert sum(s["frames"]["monitored"] for s in summaries) > 0


def command_lines() -> list[list[str]]:
    """Every ``edgewatch ...`` line of the README's shell and plain blocks, as words."""
    found: list[list[str]] = []
    synopses = [b for b in blocks("") if all(line.startswith(("edgewatch ", " "))
                                             for line in b.splitlines() if line)]
    for block in blocks("sh") + synopses:  # not the blocks of program output
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            words = line.split()
            if words and words[0] in ("edgewatch", ".venv/bin/edgewatch"):
                found.append(words[1:])
    return found


def subcommand_paths(words: list[str]) -> list[list[str]]:
    """The command words at the start of a line; ``list|purge`` gives one path for each."""
    paths: list[list[str]] = [[]]
    for word in words:
        if not re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", word):
            break
        paths = [[*p, alt] for p in paths for alt in word.split("|")]
    return [p for p in paths if p]


def test_every_command_the_readme_shows_exists() -> None:
    lines = command_lines()
    assert len(lines) > 20
    checked: set[tuple[str, ...]] = set()
    for words in lines:
        for path in subcommand_paths(words):
            if tuple(path) in checked:
                continue
            checked.add(tuple(path))
            shown = subprocess.run([sys.executable, "-m", "edgewatch.cli", *path, "--help"],
                                   text=True, capture_output=True, timeout=60, check=False,
                                   env={**os.environ, "COLUMNS": "100"})
            assert shown.returncode == 0, f"edgewatch {shlex.join(path)}: {shown.stderr}"
    assert ("fleet", "decommission") in checked


HOME = "https://github.com/edgewatch/edgewatch/blob/main/"


def test_links_work_on_a_package_index_and_point_at_files_that_exist() -> None:
    """A package index shows the README without the repository: every link is absolute or
    an anchor of the README itself, and each link into the repository names a file here."""
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert len(links) > 20
    for link in links:
        assert link.startswith(("https://", "#")), link
        if link.startswith(HOME):
            path = link[len(HOME):].split("#", 1)[0]
            assert (REPO / path).exists(), link
