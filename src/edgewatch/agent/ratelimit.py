"""Rate-limited logging of a repeating failure: the first occurrence in full (one line), then
at most one summary line per interval, counting what was held back.

The clock is injected (``edgewatch.clock``), so tests move time by hand.
"""

from __future__ import annotations

import threading

from edgewatch.clock import Clock, SystemClock


def first_line(message: object) -> str:
    """The first non-empty line of a message (an exception's text can span many lines)."""
    text = str(message).strip()
    return text.splitlines()[0].strip() if text else type(message).__name__


class RepeatLimiter:
    """Decides which occurrences of a repeating event are logged.

    ``hit(message)`` returns the line to log now, or None to stay silent: the first
    occurrence (after ``interval`` seconds without one being logged) is returned as its first
    line; later ones within ``interval`` are counted, and the first occurrence after the
    interval returns ``summary`` formatted with ``count`` (occurrences since the last logged
    line, this one included), ``seconds`` (since that line) and ``last`` (this message's first
    line). ``flush()`` returns such a summary for occurrences still held back once the
    interval has passed (call it when the failure seems over, e.g. on a success), else None;
    ``held`` (occurrences held back) is 0 when it has nothing to return. Thread-safe.
    """

    def __init__(self, summary: str, interval: float = 60.0, clock: Clock | None = None) -> None:
        self.summary = summary
        self.interval = interval
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._logged_at: float | None = None
        self.held = 0
        self._last = ""

    def hit(self, message: object) -> str | None:
        line = first_line(message)
        with self._lock:
            now = self.clock.monotonic()
            if self._logged_at is None or now - self._logged_at >= self.interval:
                if self.held:
                    out = self._summary(now, self.held + 1, line)
                else:
                    out = line
                self._logged_at, self.held = now, 0
                return out
            self.held += 1
            self._last = line
            return None

    def flush(self) -> str | None:
        if not self.held:  # the usual case, without the lock
            return None
        with self._lock:
            if not self.held or self._logged_at is None:
                return None
            now = self.clock.monotonic()
            if now - self._logged_at < self.interval:
                return None
            out = self._summary(now, self.held, self._last)
            self._logged_at, self.held = now, 0
            return out

    def _summary(self, now: float, count: int, last: str) -> str:
        assert self._logged_at is not None
        return self.summary.format(count=count, seconds=now - self._logged_at, last=last)
