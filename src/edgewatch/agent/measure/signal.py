"""The no-signal fast path: a black or frozen picture, undecodable frames, failed inference
or a live source that delivers nothing, reported as soon as it has lasted
``quality.no_signal_seconds`` instead of when its window closes.

The window summaries still count these faults as before; this only tells earlier. Fed on the
monitor thread: ``frame`` with each measured frame's faults (footage time), ``silence`` on
the monitor's clock ticks (live sources only).
"""

from __future__ import annotations

from collections.abc import Iterable

from edgewatch.agent.records import SignalChange
from edgewatch.config.agent import QualityConfig

NO_SIGNAL_FAULTS: tuple[str, ...] = ("black", "frozen", "decode_error", "inference_error")
"""Faults that mean there is no usable picture (or no model output), in the order a frame
showing several is named by."""
NO_FRAMES = "no_frames"
"""The fault of a live source that delivers no frames at all."""
BACK_SECONDS = 1.0
"""Footage with no no-signal fault needed before the signal counts as back (at most
``no_signal_seconds``)."""


class SignalTracker:
    """Turns per-frame no-signal faults and silences of a live source into SignalChange
    events: ``lost=True`` once a fault has lasted ``seconds``, ``lost=False`` once it is
    over (frames free of no-signal faults for ``BACK_SECONDS``; for ``no_frames``, the first
    frame). ``seconds`` 0 turns the tracker off (it never reports)."""

    def __init__(self, seconds: float, back_seconds: float = BACK_SECONDS) -> None:
        self.seconds = seconds
        self.back_seconds = min(back_seconds, seconds)
        self._bad_since: float | None = None
        """Footage time the current run of no-signal frames began."""
        self._good_since: float | None = None
        """While lost: footage time the current run of good frames began."""
        self._lost: SignalChange | None = None
        """The frames' loss reported and not yet over."""
        self._silent: SignalChange | None = None
        """The silence (no_frames) reported and not yet over."""

    @classmethod
    def from_config(cls, cfg: QualityConfig) -> SignalTracker:
        return cls(cfg.no_signal_seconds)

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    @property
    def lost(self) -> bool:
        """True while a loss (of either kind) has been reported and not ended."""
        return self._lost is not None or self._silent is not None

    def frame(self, timestamp: float, faults: Iterable[str],
              onset: float | None = None) -> SignalChange | None:
        """One measured frame; ``onset``, when given, is when its fault really began (a
        frozen picture was still before it counted as frozen). The change it reveals, if
        any."""
        if not self.enabled:
            return None
        present = set(faults)
        fault = next((f for f in NO_SIGNAL_FAULTS if f in present), None)
        if fault is not None:
            return self._bad(timestamp, fault, onset)
        return self._good(timestamp)

    def _bad(self, t: float, fault: str, onset: float | None) -> SignalChange | None:
        self._good_since = None
        if self._bad_since is None or t < self._bad_since:  # a new run (or time went back)
            self._bad_since = t if onset is None else min(onset, t)
        if self._lost is None and t - self._bad_since >= self.seconds:
            self._lost = SignalChange(True, fault, self._bad_since, t)
            return self._lost
        return None

    def _good(self, t: float) -> SignalChange | None:
        self._bad_since = None
        if self._lost is None:
            return None
        if self._good_since is None or t < self._good_since:
            self._good_since = t
        if t - self._good_since < self.back_seconds:
            return None
        lost, self._lost, self._good_since = self._lost, None, None
        return SignalChange(False, lost.fault, lost.since, t)

    def silence(self, now: float, last_frame: float) -> SignalChange | None:
        """A live source's clock tick: ``last_frame`` is the clock time the last frame
        arrived (or the monitor started). The change it reveals, if any."""
        if not self.enabled:
            return None
        if self._silent is None:
            if now - last_frame >= self.seconds:
                self._silent = SignalChange(True, NO_FRAMES, last_frame, now)
                return self._silent
            return None
        if last_frame > self._silent.since:  # a frame came after the silence began
            silent, self._silent = self._silent, None
            return SignalChange(False, NO_FRAMES, silent.since, max(now, last_frame))
        return None
