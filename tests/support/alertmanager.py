"""Run a real, throw-away Prometheus Alertmanager for tests.

This module does not depend on pytest: any script can use it.

    from support.alertmanager import AlertmanagerServer

    with AlertmanagerServer(workdir) as am:     # started on a free 127.0.0.1 port
        post_alerts(am.url, ...)
        am.alerts()                             # GET /api/v2/alerts (active ones by default)
    # stopped (SIGTERM)

The server gets a minimal configuration (every alert goes to a receiver named ``null`` that
notifies nobody), its own storage directory, no clustering (``--cluster.listen-address=``
empty: no gossip port, no peers) and ``--web.listen-address=127.0.0.1:<port>``. It is ready
when ``GET /-/ready`` answers 200. Its stdout/stderr go to ``<workdir>/alertmanager.log``,
quoted by :class:`AlertmanagerError`.

The binary is ``prometheus-alertmanager`` (Debian's name) or ``alertmanager`` (upstream's),
found by :func:`support.tools.find_tool` (PATH, then ``.venv/tools/bin`` where
scripts/setup-test-tools.sh unpacks it); :func:`alertmanager_binary` returns None
when neither exists, so a test can skip. Checked with Alertmanager 0.25.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from support.broker import free_port
from support.tools import find_tool

CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


class AlertmanagerError(RuntimeError):
    """Alertmanager could not be started or did not become ready; the message quotes its log."""


def alertmanager_binary() -> str | None:
    """Path of the Alertmanager executable, or None when it is not installed."""
    return find_tool("prometheus-alertmanager", "alertmanager")


class AlertmanagerServer:
    """An Alertmanager process on a loopback port; the port survives stop()/start()."""

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None,
                 host: str = "127.0.0.1", binary: str | None = None,
                 config: str = CONFIG) -> None:
        self.workdir = Path(workdir)
        self.config = config
        """The configuration file's text (default: every alert to a receiver that notifies
        nobody)."""
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary or alertmanager_binary()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "alertmanager.log"

    def command(self) -> list[str]:
        if self.binary is None:
            raise AlertmanagerError("Alertmanager is not installed "
                                    "(apt-get install prometheus-alertmanager)")
        return [self.binary, f"--config.file={self.workdir / 'am.yml'}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--cluster.listen-address=", "--log.level=debug"]

    def start(self, timeout: float = 20.0) -> AlertmanagerServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        (self.workdir / "am.yml").write_text(self.config, encoding="utf-8")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AlertmanagerError(f"alertmanager exited with {self.proc.returncode}\n"
                                        f"{self.log_text()[-3000:]}")
            if self._ready():
                return
            time.sleep(0.1)
        raise AlertmanagerError(f"alertmanager not ready after {timeout} s\n"
                                f"{self.log_text()[-3000:]}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def alerts(self, **filters: str | bool) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` with query parameters (``active=False``, ...)."""
        query = urllib.parse.urlencode(
            {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items()})
        url = f"{self.url}/api/v2/alerts" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=5.0) as resp:
            found: list[dict[str, Any]] = json.loads(resp.read())
        return found

    def __enter__(self) -> AlertmanagerServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.proc is not None and self.proc.poll() is None else "stopped"
        return f"<AlertmanagerServer {self.url} {state}>"


def ours(am: AlertmanagerServer, alert_id: str, **filters: str | bool) -> list[dict[str, Any]]:
    """The alerts of ``am`` (``am.alerts(**filters)``) with edgewatch alert id ``alert_id``."""
    return [a for a in am.alerts(**filters) if a["labels"].get("edgewatch_id") == alert_id]
