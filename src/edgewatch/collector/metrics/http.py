"""Serving a registry over HTTP (``/metrics``) from a daemon thread, and the HTML report
(``/report?device=D`` or ``/report?fleet=F``) when the service hands over a report function."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app, start_http_server
from prometheus_client.exposition import ThreadingWSGIServer

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


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per request on stderr (as /metrics alone)."""


Report = Callable[[dict[str, str]], tuple[int, str]]
"""The query's parameters -> (HTTP status, the HTML page or an error line)."""


def _with_report(metrics: Any, report: Report) -> Any:
    def app(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/report":
            return metrics(environ, start)  # type: ignore[no-any-return]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        status, text = report(query)
        kind = "text/html" if status == 200 else "text/plain"
        body = text.encode()
        start(f"{status} {'OK' if status == 200 else 'Error'}",
              [("Content-Type", f"{kind}; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]
    return app


def serve(registry: CollectorRegistry, host: str = "127.0.0.1",
          port: int = 9108, report: Report | None = None) -> MetricsServer:
    """Serve ``registry`` on ``http://host:port/metrics`` from a daemon thread (port 0: any
    free port, see :attr:`MetricsServer.port`), and ``report`` on ``/report``."""
    try:
        if report is None:
            server, thread = start_http_server(port, addr=host, registry=registry)
        else:
            server = make_server(host, port, _with_report(make_wsgi_app(registry), report),
                                 ThreadingWSGIServer, handler_class=_Quiet)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
    except OSError as exc:
        raise EdgewatchError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    return MetricsServer(server, thread)
