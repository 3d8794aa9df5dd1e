"""Run a real, throw-away Mosquitto broker for tests.

This module does not depend on pytest: any script can use it.

    from support.broker import MosquittoBroker

    with MosquittoBroker() as b:          # started on a free 127.0.0.1 port
        client.connect(b.host, b.port)
        ...
        b.restart()                       # same port, waits until it accepts connections
        b.kill()                          # SIGKILL: a crash (no save, no goodbyes)
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

When run as root, ``user root`` is added: otherwise mosquitto would switch to the
``mosquitto`` user, which cannot read the keys, password and ACL files in a 0700 temp dir.

Works with mosquitto 2.x (checked with 2.0.11). The binary is found by
:func:`support.tools.find_tool` (PATH, ``.venv/tools/bin``, ``/usr/sbin``);
:func:`mosquitto_binary` returns ``None`` when there is none, so a test can skip.

Also here, for security tests:

* :func:`write_password_file` -- a ``password_file`` from ``{user: password}``, with
  ``mosquitto_passwd -b`` or, without it, the same ``$7$`` PBKDF2-SHA512 hashes from Python;
* :func:`make_pki` -- a throw-away CA, a server certificate for localhost/127.0.0.1 and client
  certificates whose CN is the given name (EC P-256, via the ``openssl`` command line);
  :meth:`Pki.listener_config` gives the matching per-listener lines::

      pki = make_pki(tmp / "pki", ["cam-a", "collector"])
      broker = MosquittoBroker(allow_anonymous=False, listener_config=pki.listener_config(),
                               extra_config=[f"acl_file {acl}"])
      client.tls_set(ca_certs=str(pki.ca_cert), certfile=str(pki.clients["cam-a"][0]),
                     keyfile=str(pki.clients["cam-a"][1]))
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from support.tools import find_tool

__all__ = [
    "BrokerError",
    "MosquittoBroker",
    "Pki",
    "free_port",
    "hash_password",
    "make_pki",
    "mosquitto_binary",
    "mosquitto_passwd_binary",
    "openssl_binary",
    "port_accepts",
    "write_password_file",
]


class BrokerError(RuntimeError):
    """The broker could not be started (or did not become ready); the message quotes its log."""


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable (support.tools.find_tool), or None when it is not
    installed."""
    return find_tool("mosquitto")


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
    config:
        A complete configuration text to run instead of the generated one (e.g. a production
        file with its ports and paths rewritten). ``port`` must then be given and be one of its
        listeners: :meth:`wait_ready` polls it. When run as root, ``user root`` is appended
        unless the text has a ``user`` line (as for the generated config). :meth:`log_text`
        reads ``<workdir>/mosquitto.log``: point ``log_dest file`` there.
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
        config: str | None = None,
        workdir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        ready_timeout: float = 5.0,
    ) -> None:
        found = binary or mosquitto_binary()
        if found is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary: str = found
        if config is not None and port is None:
            raise ValueError("config= needs port= (the listener to wait for)")
        self.config = config
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
        as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        if self.config is not None:
            text = self.config if self.config.endswith("\n") else self.config + "\n"
            has_user = any(ln.split()[:1] == ["user"] for ln in text.splitlines())
            return text + ("user root\n" if as_root and not has_user else "")
        lines = [
            "# generated by tests/support/broker.py",
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
        if as_root:
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
                cwd=self.workdir,
            )
        try:
            self.wait_ready(self.ready_timeout if timeout is None else timeout)
        except BrokerError:
            self.kill()
            raise
        return self

    def listener_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every TCP ``listener`` line of the config (the main one first);
        a listener without a bind address is reached on 127.0.0.1."""
        found = [(self.host, self.port)]
        for line in self.config_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "listener" and words[1].isdigit():
                addr = (words[2] if len(words) > 2 else "127.0.0.1", int(words[1]))
                if addr[1] != 0 and addr not in found:
                    found.append(addr)
        return found

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Poll TCP connects to every listener (:meth:`listener_addresses`) until all succeed;
        BrokerError on timeout or if the process exits meanwhile. (On a TLS listener each probe
        leaves a harmless "Client connection from 127.0.0.1 failed: ... unexpected eof" line in
        the log.)"""
        deadline = time.monotonic() + timeout
        pending = self.listener_addresses()
        while True:
            if self._proc is None:
                raise BrokerError("broker not started")
            code = self._proc.poll()
            if code is not None:
                raise BrokerError(f"mosquitto exited with code {code}\n{self.diagnostics()}")
            pending = [a for a in pending if not port_accepts(*a)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"mosquitto not accepting on {pending} after {timeout:.1f}s\n"
                    f"{self.diagnostics()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); returns the exit code, None if it was
        not running."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL and wait: a broker crash. Nothing is saved to the persistence database and
        clients just see their connection drop."""
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

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads its reloadable settings (acl_file, password_file, ...).
        Returns at once; poll :meth:`wait_for_log` for the effect if needed."""
        if not self.running:
            raise BrokerError("broker not running")
        assert self._proc is not None
        self._proc.send_signal(signal.SIGHUP)

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

    def wait_for_log(self, text: str, timeout: float = 3.0) -> str:
        """Poll the log until it contains ``text``; return the log, AssertionError on timeout
        (mosquitto may write a line just after the client saw its effect)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the mosquitto log:\n{self.diagnostics()}")
            time.sleep(0.02)

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
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"MosquittoBroker({self.host}:{self.port}, {state}, {self.workdir})"


# -- passwords -----------------------------------------------------------------------------------


def mosquitto_passwd_binary() -> str | None:
    """Path of mosquitto_passwd (shipped with the mosquitto package), or None."""
    return find_tool("mosquitto_passwd")


def hash_password(password: str, *, iterations: int = 101, salt: bytes | None = None) -> str:
    """A mosquitto 2.x password-file hash (``$7$``: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte
    key), as ``mosquitto_passwd`` writes it."""
    salt = os.urandom(12) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def write_password_file(path: str | os.PathLike[str], users: Mapping[str, str], *,
                        use_tool: bool | None = None) -> Path:
    """Write a mosquitto ``password_file`` for ``{username: password}``.

    With ``use_tool`` True (or None and the tool installed) it runs ``mosquitto_passwd -b``;
    with False it writes the same ``$7$`` hashes from Python (:func:`hash_password`).
    """
    path = Path(path)
    tool = mosquitto_passwd_binary()
    if use_tool is None:
        use_tool = tool is not None
    if use_tool and tool is None:
        raise BrokerError("mosquitto_passwd is not installed")
    path.write_text("")
    if use_tool:
        assert tool is not None
        for user, password in users.items():
            subprocess.run([tool, "-b", str(path), user, password], check=True,
                           capture_output=True, timeout=30)
    else:
        path.write_text("".join(f"{u}:{hash_password(p)}\n" for u, p in users.items()))
    path.chmod(0o600)
    return path


# -- certificates --------------------------------------------------------------------------------


def openssl_binary() -> str | None:
    """Path of the openssl command line tool, or None."""
    return find_tool("openssl")


_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass
class Pki:
    """A throw-away CA with a server certificate and client certificates (EC P-256 keys).

    ``clients[cn]`` is ``(certfile, keyfile)`` for a client certificate whose CN is ``cn``;
    :meth:`issue_client` adds more. Made by :func:`make_pki`.
    """

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    openssl: str = "openssl"
    days: int = 2

    @property
    def config(self) -> Path:
        return self.directory / "openssl.cnf"

    def listener_config(self, *, require_certificate: bool = True,
                        use_identity_as_username: bool = True) -> list[str]:
        """Per-listener mosquitto lines for a TLS listener with this CA and server cert."""
        return [
            f"cafile {self.ca_cert}",
            f"certfile {self.server_cert}",
            f"keyfile {self.server_key}",
            f"require_certificate {'true' if require_certificate else 'false'}",
            f"use_identity_as_username {'true' if use_identity_as_username else 'false'}",
        ]

    def issue_client(self, cn: str) -> tuple[Path, Path]:
        """A client certificate (clientAuth) with subject CN=cn, signed by this CA."""
        stem = "client-" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in cn)
        pair = self._issue(stem, cn, "client")
        self.clients[cn] = pair
        return pair

    def _issue(self, stem: str, cn: str, extensions: str) -> tuple[Path, Path]:
        key, csr, crt = (self.directory / f"{stem}.{ext}" for ext in ("key", "csr", "crt"))
        _run_openssl(self.openssl, "req", "-new", "-config", self.config, *_EC_KEY,
                     "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        _run_openssl(self.openssl, "x509", "-req", "-in", csr, "-CA", self.ca_cert,
                     "-CAkey", self.ca_key, "-set_serial", str(secrets.randbits(63)),
                     "-days", str(self.days), "-extfile", self.config,
                     "-extensions", extensions, "-out", crt)
        csr.unlink()
        return crt, key


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _run_openssl(openssl: str, *args: str | os.PathLike[str]) -> None:
    proc = subprocess.run([openssl, *map(str, args)], capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def make_pki(directory: str | os.PathLike[str], clients: Iterable[str] = (), *,
             ca_name: str = "edgewatch-test-ca",
             server_dns: Iterable[str] = ("localhost",),
             server_ips: Iterable[str] = ("127.0.0.1",),
             days: int = 2) -> Pki:
    """Create a CA, a server certificate (CN localhost, SAN DNS:localhost, IP:127.0.0.1) and one
    client certificate per name in ``clients`` (CN = the name) under ``directory`` with the
    ``openssl`` command line tool (BrokerError if it is missing)."""
    openssl = openssl_binary()
    if openssl is None:
        raise BrokerError("the openssl command line tool is not installed")
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    san = ",".join([*(f"DNS:{n}" for n in server_dns), *(f"IP:{a}" for a in server_ips)])
    pki = Pki(directory=d, ca_cert=d / "ca.crt", ca_key=d / "ca.key",
              server_cert=d / "server.crt", server_key=d / "server.key",
              openssl=openssl, days=days)
    pki.config.write_text(_OPENSSL_CNF.format(san=san))
    _run_openssl(openssl, "req", "-x509", "-new", "-config", pki.config, "-extensions", "ca",
                 *_EC_KEY, "-keyout", pki.ca_key, "-out", pki.ca_cert,
                 "-days", str(days), "-subj", f"/CN={ca_name}")
    pki._issue("server", "localhost", "server")
    for cn in clients:
        pki.issue_client(cn)
    return pki
