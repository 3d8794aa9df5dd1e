"""What the command modules share: exit codes, the logger, stopping on signals."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging
    import threading
    from types import FrameType

LOGGER = "edgewatch"
"""The name of the commands' logger."""

EXIT_ERROR = 1
EXIT_USAGE = 2


def log() -> logging.Logger:
    """The commands' logger. :mod:`logging` is imported when a command first logs, not to
    print ``--version``, ``--help`` or a usage error."""
    import logging

    return logging.getLogger(LOGGER)


def stop_on_signals(stop: threading.Event, doing: str) -> None:
    """SIGINT and SIGTERM set ``stop``, logged as ``signal N: <doing>``."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log().info("signal %d: %s", signum, doing)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
