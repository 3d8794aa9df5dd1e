"""A stand-in for systemd's notification socket: a unix datagram socket the tests read
(``$NOTIFY_SOCKET`` of a supervised process), recording each message with its arrival time."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


class NotifySocket:
    """Binds ``path`` (or an abstract name when ``abstract``); ``address`` is what goes into
    ``$NOTIFY_SOCKET``. ``messages``: (monotonic arrival time, {key: value}) in order."""

    def __init__(self, path: Path, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"edgewatch-test-{path.name}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.partition("=")[::2] for line in data.decode().splitlines())
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def with_key(self, key: str, since: float = 0.0) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(t, m) for t, m in self.messages if key in m and t >= since]

    def statuses(self) -> list[str]:
        return [m["STATUS"] for _, m in self.with_key("STATUS")]

    def wait_for(self, key: str, value: str | None = None, timeout: float = 60.0,
                 since: float = 0.0) -> float:
        """The arrival time of the first message (after ``since``) with ``key`` (``value``,
        or one containing it for STATUS); fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in self.with_key(key, since):
                if value is None or m[key] == value or (key == "STATUS" and value in m[key]):
                    return t
            time.sleep(0.05)
        raise AssertionError(f"no {key}={value or '*'} within {timeout} s: {self.messages}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()
