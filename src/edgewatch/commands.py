"""Commands sent to the device on ``cmd/<name>``; every one is answered, none can crash it.

A handler takes the parsed arguments and returns a result dict, or raises CommandError
with a message for the operator.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from edgewatch.errors import EdgewatchError

log = logging.getLogger(__name__)

SCHEMA = "edgewatch.cmd/1"
RESULT_SCHEMA = "edgewatch.cmd_result/1"
MAX_PAYLOAD = 64 * 1024

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class CommandError(EdgewatchError):
    """A command was malformed, unknown or refused; the message goes back to the sender."""


class CommandRouter:
    """Parses command payloads and dispatches them to registered handlers."""

    def __init__(self, token: str = "") -> None:
        self.token = token
        self.handlers: dict[str, Handler] = {"ping": lambda args: {"pong": True}}

    def register(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    def __call__(self, name: str, payload: bytes) -> dict[str, Any]:
        result: dict[str, Any] = {"schema": RESULT_SCHEMA, "command": name[:100], "id": None}
        try:
            args = self._parse(payload)
            result["id"] = args.pop("id", None)
            given = args.pop("token", None)
            if self.token and given != self.token:
                raise CommandError("unauthorised: missing or wrong token")
            handler = self.handlers.get(name)
            if handler is None:
                known = ", ".join(sorted(self.handlers))
                raise CommandError(f"unknown command {name[:100]!r} (known: {known})")
            result.update(handler(args))
            result["ok"] = True
        except CommandError as exc:
            result.update(ok=False, error=str(exc))
        except Exception as exc:  # a handler bug must not take the agent down
            log.exception("command %r failed", name)
            result.update(ok=False, error=f"internal error: {type(exc).__name__}")
        return result

    @staticmethod
    def _parse(payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_PAYLOAD:
            raise CommandError(f"payload larger than {MAX_PAYLOAD} bytes")
        try:
            args = json.loads(payload.decode("utf-8")) if payload.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError(f"payload is not JSON: {exc}") from exc
        if not isinstance(args, dict):
            raise CommandError("payload must be a JSON object")
        schema = args.pop("schema", SCHEMA)
        if schema != SCHEMA:
            raise CommandError(f"unsupported schema {str(schema)[:50]!r} (expected {SCHEMA})")
        cid = args.get("id")
        if cid is not None and not isinstance(cid, (str, int)):
            raise CommandError("'id' must be a string or an integer")
        return args
