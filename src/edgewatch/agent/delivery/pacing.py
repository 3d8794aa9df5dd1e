"""When the publisher may try again: reconnect backoff, and the drain rate limit."""

from __future__ import annotations

import random
import time


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog, 2015)."""

    def __init__(self, low: float, high: float, rng: random.Random | None = None) -> None:
        self.low, self.high = low, high
        self.attempt = 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        cap = min(self.high, self.low * 2.0**self.attempt)
        self.attempt += 1
        return self.rng.uniform(self.low, max(cap, self.low))

    def reset(self) -> None:
        self.attempt = 0


class TokenBucket:
    """At most ``rate`` messages a second, bursts of up to ``rate`` (``rate <= 0``: no limit).

    The bucket starts empty and refills continuously on the monotonic clock.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = 0.0
        self._last_refill = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one (True), else False: try again later."""
        rate = self.rate
        if rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(rate, self._tokens + (now - self._last_refill) * rate)
        self._last_refill = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
