"""Run a real, throw-away Mosquitto broker for tests.

This module does not depend on pytest: any script can use it.

    from broker import MosquittoBroker

    with MosquittoBroker() as b:          # started on a free 127.0.0.1 port
        client.connect(b.host, b.port)
        ...
        b.restart()                       # same port, waits until it accepts connections
        b.kill()                          # SIGKILL, e.g. to test a last will
        b.start()
    # stopped (SIGTERM) and its temporary directory removed

Each broker gets its own directory holding the generated ``mosquitto.conf``, the broker's log
(``mosquitto.log``, ``log_type all``; read it with :meth:`MosquittoBroker.log_text`), its
stdout/stderr (``stderr.log``: config errors show up there) and, when asked for, the persistence
database (``data/``). The configuration is, in this order::

    <global lines: allow_anonymous, persistence, log_dest, user (when run as root)>
    listener PORT 127.0.0.1
    <listener_config lines: cafile, certfile, keyfile, require_certificate, ...>
    <extra_config lines: password_file, acl_file, further listeners, ...>

With mosquitto's default ``per_listener_settings false``, ``password_file``, ``acl_file`` and
``allow_anonymous`` are global wherever they appear, while TLS options belong to the listener
line above them; that is why ``listener_config`` comes right after the main listener.

Works with mosquitto 2.x (checked with 2.0.11). The binary is ``shutil.which("mosquitto")`` or
``/usr/sbin/mosquitto``; :func:`mosquitto_binary` returns ``None`` when neither exists, so a
test can skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

__all__ = ["BrokerError", "MosquittoBroker", "free_port", "mosquitto_binary"]

_FALLBACK_BINARY = "/usr/sbin/mosquitto"


class BrokerError(RuntimeError):
    """The broker could not be started (or did not become ready); the message quotes its log."""


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    if os.access(_FALLBACK_BINARY, os.X_OK):
        return _FALLBACK_BINARY
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if a TCP connection to (host, port) succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class MosquittoBroker:
    """A mosquitto process on a loopback port, with a generated configuration.

    Parameters
    ----------
    port:
        TCP port of the main listener; a free one (see :func:`free_port`) when None. It stays the
        same across :meth:`restart` and :meth:`start` after :meth:`stop`/:meth:`kill`.
    host:
        Address the main listener binds to (``127.0.0.1``).
    allow_anonymous:
        Written as ``allow_anonymous true|false``.
    persistence:
        ``persistence true`` plus ``persistence_location`` (``<workdir>/data/`` unless
        ``persistence_location`` is given); ``persistence false`` otherwise. Mosquitto writes
        the database on SIGTERM (:meth:`stop`), not on SIGKILL (:meth:`kill`) unless
        ``autosave_interval`` is set through ``extra_config``.
    listener_config:
        Lines placed right after ``listener PORT HOST``: per-listener options such as
        ``cafile``, ``certfile``, ``keyfile``, ``require_certificate true``,
        ``use_identity_as_username true``.
    extra_config:
        Lines appended at the end: ``password_file``, ``acl_file``, more ``listener`` blocks...
    workdir:
        Directory for the config, logs and data; a new temporary directory (removed by
        :meth:`close`) when None. A given directory is never removed.
    binary:
        The mosquitto executable; :func:`mosquitto_binary` when None.
    ready_timeout:
        Default timeout of :meth:`wait_ready` as called by :meth:`start`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        allow_anonymous: bool = True,
        persistence: bool = False,
        persistence_location: str | os.PathLike[str] | None = None,
        listener_config: Iterable[str] = (),
        extra_config: Iterable[str] = (),
        workdir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        ready_timeout: float = 5.0,
    ) -> None:
        found = binary or mosquitto_binary()
        if found is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary: str = found
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.allow_anonymous = allow_anonymous
        self.persistence = persistence
        self.listener_config = list(listener_config)
        self.extra_config = list(extra_config)
        self.ready_timeout = ready_timeout
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(
            tempfile.mkdtemp(prefix="edgewatch-mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persistence_location = (
            Path(persistence_location) if persistence_location is not None
            else self.workdir / "data")
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.stderr_path = self.workdir / "stderr.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.write_config()

    # -- configuration -------------------------------------------------------------------------

    def config_text(self) -> str:
        """The configuration file this broker runs with."""
        lines = [
            "# generated by tests/broker.py",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
        ]
        if self.persistence:
            # mosquitto wants the trailing slash on a directory
            lines += ["persistence true", f"persistence_location {self.persistence_location}/"]
        else:
            lines.append("persistence false")
        lines += [
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # As root, mosquitto would switch to the "mosquitto" user, which cannot read the key,
            # password and ACL files in our 0700 temporary directory.
            lines.append("user root")
        lines.append(f"listener {self.port} {self.host}")
        lines += self.listener_config
        lines += self.extra_config
        return "\n".join(lines) + "\n"

    def write_config(self) -> Path:
        """(Re)write the config file; call it after changing the attributes, then restart()."""
        if self.persistence:
            self.persistence_location.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        return self.config_path

    # -- process control -----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def start(self, timeout: float | None = None) -> MosquittoBroker:
        """Start mosquitto (if not running) and wait until the port accepts connections."""
        if self.running:
            return self
        self._proc = None
        with open(self.stderr_path, "ab") as err:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True,
            )
        try:
            self.wait_ready(self.ready_timeout if timeout is None else timeout)
        except BrokerError:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Poll a TCP connect to the main listener until it succeeds; BrokerError on timeout
        or if the process exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None:
                raise BrokerError("broker not started")
            code = self._proc.poll()
            if code is not None:
                raise BrokerError(f"mosquitto exited with code {code}\n{self.diagnostics()}")
            if port_accepts(self.host, self.port):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"mosquitto not accepting on {self.host}:{self.port} after {timeout:.1f}s\n"
                    f"{self.diagnostics()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); returns the exit code, None if it was
        not running."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL and wait: no persistence save, no clean disconnects (last wills do fire
        only for clients of a broker that stays up, so this models a broker crash)."""
        return self._end(signal.SIGKILL, 5.0)

    def _end(self, sig: signal.Signals, timeout: float) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._wait_port_closed(1.0)
        return proc.returncode

    def _wait_port_closed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while port_accepts(self.host, self.port, 0.05) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self, timeout: float | None = None) -> MosquittoBroker:
        """stop() then start() on the same port (and with the current config file)."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """stop() and remove the temporary directory if this object created it."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- diagnostics ---------------------------------------------------------------------------

    def log_text(self) -> str:
        """The broker's log file so far ('' if none yet)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self, tail: int = 40) -> str:
        parts = []
        for label, path in (("stderr", self.stderr_path), ("log", self.log_path)):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if text.strip():
                lines = text.splitlines()[-tail:]
                parts.append(f"--- mosquitto {label} ({path}) ---\n" + "\n".join(lines))
        parts.append(f"--- config ({self.config_path}) ---\n{self.config_text()}")
        return "\n".join(parts)

    # -- context manager -----------------------------------------------------------------------

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"MosquittoBroker({self.host}:{self.port}, {state}, {self.workdir})"
