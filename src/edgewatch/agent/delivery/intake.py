"""Commands arriving on ``cmd/<name>``: handed to the handler, every one answered.

The answer (a ``cmd_result``) goes through the outbox like any message: durable, with the
transport fields, published in turn. Without a handler every command is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from edgewatch.contracts import CommandResult

CommandHandler = Callable[[str, bytes], CommandResult]
"""Called with (command name, raw payload); returns the result to send back."""


class ResultQueue(Protocol):
    def put(self, kind: str, payload: dict[str, Any], *, priority: int | None = None) -> int: ...


class CommandIntake:
    """Runs a command received on a topic and queues its result."""

    def __init__(self, queue: ResultQueue, commands: CommandHandler | None) -> None:
        self.queue = queue
        self.commands = commands

    def receive(self, topic: str, payload: bytes) -> None:
        """The command named by the topic's last level, with its raw payload."""
        name = topic.rsplit("/", 1)[-1]
        if self.commands is None:
            result = CommandResult(command=name[:100], ok=False,
                                   error="this agent accepts no commands")
        else:
            result = self.commands(name, payload)
        self.queue.put("cmd_result", msgspec.to_builtins(result))  # durable, with device/seq
