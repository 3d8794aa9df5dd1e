"""What the monitor is composed of: its settings, the interfaces of the parts
:class:`~edgewatch.agent.window.monitor.Monitor` calls on its worker thread (the window
factory and its open windows, the judge, per-frame checks and observers, the resource
probe) and of the sinks it hands closed windows and signal changes to."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.records import Frame, InferenceResult, SignalChange
from edgewatch.agent.window.summary import WindowSummary

Sink = Callable[[WindowSummary], None]
"""Where each closed window goes."""
SignalSink = Callable[[SignalChange], None]
"""Where each change of the no-signal state goes, as soon as it is known."""


class WindowJudge(Protocol):
    """Gives each closed window a verdict before any sink sees it (``DriftJudge``).

    The monitor stores ``judge(summary)`` in ``summary.extra[name]``."""

    name: str

    def judge(self, summary: WindowSummary) -> dict[str, Any]: ...


class OpenWindow(Protocol):
    """What a window being filled offers the monitor (a WindowAccumulator)."""

    def add(self, m: FrameMeasurement) -> None: ...

    @property
    def summary(self) -> WindowSummary: ...


class WindowFactory(Protocol):
    """Opens windows (``edgewatch.agent.window.contexts.ReferenceSet``)."""

    def open(self, start: float, end: float) -> OpenWindow: ...

    def empty(self, start: float, end: float) -> WindowSummary: ...


class FrameCheck(Protocol):
    """Per-frame verdicts on a measurement, on the monitor thread (``FrameChecks``: data
    quality faults and the anomaly score)."""

    def check(self, measurement: FrameMeasurement) -> None: ...


class FrameObserver(Protocol):
    """Sees each measured frame with its image, outputs and window, on the monitor thread
    (``EvidenceCapture``: it only queues, never blocks)."""

    def observe(self, frame: Frame, result: InferenceResult | None,
                measurement: FrameMeasurement, window: tuple[float, float]) -> None: ...


class FrameObservers:
    """Several frame observers as one (evidence capture, a reference rebuild), called in
    order; one that fails does not keep the frame from the others (the first failure is
    raised after all have seen it)."""

    def __init__(self, *observers: FrameObserver | None) -> None:
        self.observers = [o for o in observers if o is not None]

    def observe(self, frame: Frame, result: InferenceResult | None,
                measurement: FrameMeasurement, window: tuple[float, float]) -> None:
        failure: Exception | None = None
        for observer in self.observers:
            try:
                observer.observe(frame, result, measurement, window)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


class ResourceProbe(Protocol):
    """Device figures attached to each closed window (``ResourceSampler``)."""

    def sample(self) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    """How observed frames become windows: window bounds, sampling and queueing.

    The defaults measure every frame (``every_nth=1``, ``max_fps=0``); ``make_monitor``
    takes them from the configuration, whose ``features.max_fps`` defaults to 2.5.
    """

    window_seconds: float = 60.0
    window_frames: int = 0
    """Close a window after this many frames too (0: by time only)."""
    queue_size: int = 32
    every_nth: int = 1
    max_fps: float = 0.0
    live: bool = False
    """Close windows on the clock even when no frame comes (a camera)."""
    lossless: bool = False
    """A full queue makes ``observe`` wait instead of skipping the frame (replays)."""
