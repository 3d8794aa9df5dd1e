"""Supervision by systemd (``Type=notify``): readiness, a watchdog fed by progress, a status line.

systemd gives a ``Type=notify`` service ``$NOTIFY_SOCKET`` (a unix datagram socket; a leading
``@`` names the abstract namespace) and, with ``WatchdogSec=``, ``$WATCHDOG_USEC``. The
process sends ``READY=1`` once it does its job, ``WATCHDOG=1`` at least every
``WATCHDOG_USEC`` (systemd kills it otherwise) and ``STATUS=`` lines that ``systemctl
status`` shows (the sd_notify protocol, a few lines of socket code: no dependency).

``Supervisor`` keeps the watchdog honest: its thread sends ``WATCHDOG=1`` every half
``WATCHDOG_USEC`` only if the process made progress since the last ping (``beat``: a frame,
a stored batch), or is legitimately waiting (``waiting``: a source's reconnection backoff).
A hung read leaves the pings out, and systemd restarts the process. Without
``$NOTIFY_SOCKET`` (not under systemd) every method is a no-op and no thread runs.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from edgewatch.clock import Clock, SystemClock

if TYPE_CHECKING:
    import socket

log = logging.getLogger(__name__)

STATUS_ONLY_PERIOD_S = 10.0
"""Without a watchdog, the status line is refreshed this often."""

_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def public_uri(uri: str) -> str:
    """``uri`` without its credentials (``rtsp://user:pw@cam/x`` -> ``rtsp://cam/x``): the
    status line is readable by every local user."""
    return _USERINFO.sub("", uri)


class Notifier:
    """Sends sd_notify datagrams to ``address`` (``$NOTIFY_SOCKET``); never raises."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None and self.address[:1] in ("/", "@")

    def send(self, *lines: str) -> bool:
        """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``) in one datagram; whether it went."""
        if not self.enabled or not lines:
            return False
        assert self.address is not None
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        data = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    import socket  # here: only a service under systemd needs it

                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)
                self._sock.sendto(data, target)
            except OSError as exc:
                if not self._failed:  # once: the service goes on without its supervisor
                    log.warning("cannot notify systemd at %s: %s", self.address, exc)
                    self._failed = True
                return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings: half of ``$WATCHDOG_USEC``; None without a watchdog, or when
    ``$WATCHDOG_PID`` names another process."""
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class Supervisor:
    """READY once, WATCHDOG while progressing, STATUS from ``status`` (see the module).

    ``beat`` is cheap (the frame loop calls it per frame); the thread started by ``start``
    calls ``tick`` every ``interval_s``. ``tick`` is public for tests with a manual clock.
    """

    def __init__(self, notifier: Notifier, watchdog_s: float | None = None, *,
                 clock: Clock | None = None) -> None:
        self.notifier = notifier
        self.watchdog_s = watchdog_s
        self.clock = clock or SystemClock()
        self.status: Callable[[], str] | None = None
        self._beats = 0
        self._seen = 0
        self._ready = False
        self._idle_until = float("-inf")
        self._waiting_status: str | None = None
        self._last_alive = self.clock.monotonic()
        self._last_status: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *,
                     clock: Clock | None = None) -> Supervisor:
        return cls(Notifier.from_environ(environ), watchdog_interval(environ), clock=clock)

    @property
    def enabled(self) -> bool:
        return self.notifier.enabled

    @property
    def interval_s(self) -> float:
        return self.watchdog_s or STATUS_ONLY_PERIOD_S

    def ready(self, status: str | None = None) -> None:
        """``READY=1`` (once), with a status line."""
        if self._ready:
            return
        self._ready = True
        status = status or self._status()
        self._last_status = status
        self.notifier.send("READY=1", *([f"STATUS={status}"] if status else []))

    def beat(self) -> None:
        """Progress: the next ping goes out. The first one also says ``READY=1``."""
        self._beats += 1
        if not self._ready:
            self.ready()

    def waiting(self, seconds: float, status: str) -> None:
        """Legitimately idle for up to ``seconds`` (a reconnection's backoff): pings go on
        until then, and the status line says ``status`` meanwhile. Counts as progress."""
        self._idle_until = self.clock.monotonic() + seconds
        self._waiting_status = status
        self.beat()
        self.say(status)

    def say(self, status: str) -> None:
        """A status line now (``systemctl status`` shows it)."""
        if status != self._last_status:
            self._last_status = status
            self.notifier.send(f"STATUS={status}")

    def _status(self) -> str:
        now = self.clock.monotonic()
        if self._waiting_status is not None and now < self._idle_until:
            return self._waiting_status
        try:
            return self.status() if self.status is not None else ""
        except Exception:  # a status is not worth a crash
            log.debug("status failed", exc_info=True)
            return ""

    def tick(self) -> bool:
        """One period: ``WATCHDOG=1`` (and the status) if there was progress since the last
        tick or a wait is in course; otherwise no ping, and a status saying for how long
        nothing moved. Whether it pinged."""
        now = self.clock.monotonic()
        beats = self._beats
        alive = beats != self._seen or now < self._idle_until
        self._seen = beats
        if not self._ready:  # still starting: TimeoutStartSec's business
            return False
        if alive:
            self._last_alive = now
            status = self._status()
        else:
            status = f"stalled: no progress for {now - self._last_alive:.0f} s"
        lines = ["WATCHDOG=1"] if alive and self.watchdog_s else []
        if status and status != self._last_status:
            lines.append(f"STATUS={status}")
            self._last_status = status
        if lines:
            self.notifier.send(*lines)
        return alive and bool(self.watchdog_s)

    def start(self) -> None:
        """The pinging thread (none when not supervised)."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="edgewatch-watchdog",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    def stopping(self, status: str = "stopping") -> None:
        """``STOPPING=1``: no more pings (the stop has its own timeout, TimeoutStopSec)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self.enabled:
            self.notifier.send("STOPPING=1", f"STATUS={status}")
        self.notifier.close()
