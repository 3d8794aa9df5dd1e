"""Headless Chromium (Debian package ``chromium``, installed by scripts/setup-test-tools.sh) on a
report file: the DOM after the page's scripts ran, the console messages (Chromium logs
each one as a ``CONSOLE`` line with ``--enable-logging=stderr``) and a screenshot kept as
a test artefact (in ``$EDGEWATCH_REPORT_ARTEFACTS`` when set, else beside the report)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.tools import find_tool

FLAGS = ["--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0"]


@dataclass
class Rendered:
    dom: str
    console: list[str]
    screenshot: Path

    @property
    def charts(self) -> str:
        """The page's own check of its charts (``ok N`` or ``failed: ...``)."""
        found = re.search(r'data-charts="([^"]*)"', self.dom)
        return found.group(1) if found else "not run"


def chromium() -> str:
    found = find_tool("chromium", "chromium-browser", "google-chrome")
    if found:
        return found
    pytest.skip("chromium not installed (scripts/setup-test-tools.sh installs it)")


def render(page: Path, name: str | None = None) -> Rendered:
    """Open ``page`` (a file) in headless Chromium twice: the DOM dump with the console,
    then a full-height screenshot."""
    exe = chromium()
    profile = page.parent / f".chromium-{page.stem}"
    common = [exe, *FLAGS, f"--user-data-dir={profile}"]
    url = page.resolve().as_uri()
    run = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120, check=True)
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    artefacts = Path(os.environ.get("EDGEWATCH_REPORT_ARTEFACTS") or page.parent)
    artefacts.mkdir(parents=True, exist_ok=True)
    shot = artefacts / f"{name or page.stem}.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=800,4000", url],
                   capture_output=True, text=True, timeout=120, check=True)
    print(f"screenshot of {page.name}: {shot}")
    return Rendered(run.stdout, console, shot)


def assert_renders(page: Path, name: str | None = None) -> Rendered:
    """The report opens with no console message and every chart drawn."""
    shown = render(page, name)
    assert shown.console == [], shown.console
    assert shown.charts.startswith("ok "), shown.charts
    assert int(shown.charts.split()[1]) == shown.dom.count('<svg class="chart"') > 0
    assert shown.screenshot.stat().st_size > 1000
    return shown
