"""What the command modules share: exit codes, the logger, stopping on signals."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger("edgewatch")

EXIT_ERROR = 1
EXIT_USAGE = 2


def stop_on_signals(stop: threading.Event, doing: str) -> None:
    """SIGINT and SIGTERM set ``stop``, logged as ``signal N: <doing>``."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: %s", signum, doing)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
