"""Commands sent to the device on ``cmd/<name>``; every one is answered, none can crash it.

A payload is decoded by :func:`edgewatch.contracts.codec.decode_command` (bounded: size,
depth, flat scalar arguments, no NUL characters, ids that fit); a payload it refuses is
answered with ``ok: false`` and the reason. A handler takes the decoded arguments and returns
the result's fields (those of :class:`~edgewatch.contracts.CommandResult`), or raises
CommandError with a message for the operator.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec

from edgewatch.contracts import codec
from edgewatch.contracts.command import MAX_COMMAND_BYTES, CommandId, CommandResult
from edgewatch.errors import EdgewatchError

log = logging.getLogger(__name__)

MAX_ERROR = 500
"""Longest error sentence sent back."""
MAX_ID = 128
"""Longest command id a result carries (contracts.bounds.Id)."""
REMEMBERED = 256
"""Command ids remembered with their answers: a command delivered again (the operator's
publish, then the collector's delivery of the same queued command) is answered again
without being carried out twice."""
_REFUSALS = {
    "size": "command payload too large",
    "encoding": "command payload is not JSON",
    "depth": "command payload nested too deeply",
    "invalid": "invalid command payload",
}
_FLAT = "commands are flat JSON objects of strings, numbers, booleans and lists of them"
_HINTS = (  # what a decoder message means, for the operator
    ("NUL character", "a name or value holds a NUL character"),
    ("2147483647", "an integer is out of range (32 bits)"),
    ("-2147483648", "an integer is out of range (32 bits)"),
    ("out of range", "a number is out of range"),
    ("Expected `object`", "the payload is not a JSON object"),
    ("got `array` - at `$[...][", "a list holds a list (nested lists are refused)"),
    ("got `object`", "an argument is an object (nested objects are refused)"),
)

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class CommandError(EdgewatchError):
    """A command was malformed, unknown or refused; the message goes back to the sender."""


class _IdOnly(msgspec.Struct):
    """The id of a payload the decoder refused, when it can still be read (unknown fields are
    skipped), so the answer reaches the sender's wait."""

    id: CommandId = None


def _printable(name: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in name[:100]) or "?"


def _refusal(exc: codec.Rejected) -> str:
    """The operator's sentence for a refused payload."""
    if exc.reason == "schema":
        return exc.detail
    what = _REFUSALS.get(exc.reason, "command payload refused")
    if exc.reason != "invalid":
        return f"{what}: {exc.detail}"
    hint = next((h for key, h in _HINTS if key in exc.detail), None)
    return f"{what}: {hint or exc.detail} ({_FLAT})"


def _salvage_id(payload: bytes) -> CommandId:
    if not payload.lstrip().startswith(b"{") or len(payload) > MAX_COMMAND_BYTES:
        return None
    try:
        ident = msgspec.json.decode(payload, type=_IdOnly).id
    except (msgspec.DecodeError, RecursionError):
        return None
    return None if isinstance(ident, str) and "\x00" in ident else ident


class CommandRouter:
    """Decodes command payloads and dispatches them to registered handlers."""

    def __init__(self, token: str = "") -> None:
        self.token = token
        self.handlers: dict[str, Handler] = {"ping": lambda args: {"pong": True}}
        self._done: OrderedDict[tuple[str, str], CommandResult] = OrderedDict()
        """(name, id) -> the answer, for the last REMEMBERED commands carried out."""
        self._done_lock = threading.Lock()

    def register(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    def __call__(self, name: str, payload: bytes) -> CommandResult:
        command = _printable(name)
        try:
            decoded = codec.decode_command(payload)
        except codec.Rejected as exc:
            return self._refuse(command, _salvage_id(payload), _refusal(exc))
        ident = decoded.id
        if isinstance(ident, str) and len(ident) > MAX_ID:  # the result could not carry it
            return self._refuse(command, None, f"'id' must be at most {MAX_ID} characters")
        try:
            # imported here: hmac loads OpenSSL (through hashlib), which an agent that gets
            # no commands (a replay, MQTT off) has no other use for (edgewatch.contracts.digest)
            import hmac

            if self.token and not hmac.compare_digest(decoded.token.encode(),
                                                      self.token.encode()):
                raise CommandError("unauthorised: missing or wrong token")
            handler = self.handlers.get(name)
            if handler is None:
                known = ", ".join(sorted(self.handlers))
                raise CommandError(f"unknown command {command!r} (known: {known})")
            key = (name, ident) if isinstance(ident, str) and ident else None
            with self._done_lock:
                if key is not None and key in self._done:
                    log.info("command %r id %s: already carried out, answered again",
                             command, ident)
                    return self._done[key]
            result = self._carry_out(handler, decoded.args, command, ident)
            if key is not None and result.ok:
                with self._done_lock:
                    self._done[key] = result
                    while len(self._done) > REMEMBERED:
                        self._done.popitem(last=False)
            return result
        except CommandError as exc:
            return self._refuse(command, ident, str(exc))
        except Exception as exc:  # a handler bug must not take the agent down
            log.exception("command %r failed", command)
            return self._refuse(command, ident, f"internal error: {type(exc).__name__}")

    def _carry_out(self, handler: Handler, args: dict[str, Any], command: str,
                   ident: CommandId) -> CommandResult:
        fields = handler(dict(args))
        return msgspec.convert({**fields, "command": command, "id": ident, "ok": True},
                               CommandResult)

    @staticmethod
    def _refuse(command: str, ident: CommandId, error: str) -> CommandResult:
        return CommandResult(command=command, ok=False, id=ident, error=error[:MAX_ERROR])
