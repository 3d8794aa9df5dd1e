"""A real HTTP webhook receiver (Slack-compatible incoming webhook stand-in) for tests that
count what the collector's alert routing sends to people.

    with WebhookReceiver() as hook:
        router = AlertRouter(webhook_url=hook.url)
        ...
        hook.texts()        # the "text" of every POST, in order
"""

from __future__ import annotations

import http.server
import json
import threading
from types import TracebackType
from typing import Any


class _Server(http.server.ThreadingHTTPServer):
    received: list[Any]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: Any) -> None:
        pass


class WebhookReceiver:
    """Listens on a free 127.0.0.1 port; records each POSTed JSON body."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.received = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/services/T0/B0/secret"

    @property
    def received(self) -> list[Any]:
        return list(self._server.received)

    def texts(self) -> list[str]:
        return [str(body.get("text", "")) for body in self.received]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
