"""Serving a registry over HTTP (``/metrics``) from a daemon thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from edgewatch.errors import EdgewatchError


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving, release the socket and wait for the thread (idempotent)."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(5.0)
        self.server.server_close()

    def shutdown(self) -> None:
        """Same as :meth:`close` (the name ``socketserver`` servers use)."""
        self.close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(registry: CollectorRegistry, host: str = "127.0.0.1",
          port: int = 9108) -> MetricsServer:
    """Serve ``registry`` on ``http://host:port/metrics`` from a daemon thread (port 0: any
    free port, see :attr:`MetricsServer.port`)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise EdgewatchError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    return MetricsServer(server, thread)
