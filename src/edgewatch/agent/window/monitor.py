"""The monitor: measures frames off the inference thread and closes windows.

``observe`` runs on the caller's (inference) thread and only does O(1) bookkeeping: it
decides whether the frame is sampled (``every_nth``, ``max_fps``), counts it in its window
(``FrameTally``: a frame not sampled waits in a small buffer, counted with the next few)
and offers a sampled one to a bounded queue. When the queue is full the frame is not
monitored and the skip is counted. A single worker thread
measures frames, accumulates windows and hands each closed window to the sink.

The no-signal fast path: with checks that track the signal (``FrameChecks.signal``), the
worker reports each change of the no-signal state to ``on_signal`` as soon as it is known
(black, frozen, undecodable frames, failed inference for ``quality.no_signal_seconds`` of
footage; on a live monitor also no frames at all for that long by the clock), before the
window closes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from typing import Any

from edgewatch.agent.measure.frame import FrameMeasurement, FrameMeasurer
from edgewatch.agent.measure.sampling import RateCap
from edgewatch.agent.measure.signal import SignalTracker
from edgewatch.agent.records import DeferredResult, Frame, InferenceResult, SignalChange
from edgewatch.agent.window.accumulator import WindowAccumulator
from edgewatch.agent.window.assigner import WindowSlot
from edgewatch.agent.window.monitor_parts import (
    FrameCheck,
    FrameObserver,
    MonitorSettings,
    OpenWindow,
    ResourceProbe,
    SignalSink,
    Sink,
    WindowFactory,
    WindowJudge,
)
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.agent.window.tally import BUFFERED, MAX_UNCHECKED, WAKE_UNCHECKED, FrameTally
from edgewatch.clock import Clock, SystemClock

log = logging.getLogger(__name__)

__all__ = ["BUFFERED", "MAX_UNCHECKED", "WAKE_UNCHECKED", "Monitor", "MonitorSettings"]

_STOP, _CHECK = object(), object()  # _CHECK: wakes the worker to run the waiting checks


class Monitor:
    """Measures observed frames into windows and emits a WindowSummary per window.

    Collaborators, all optional: ``check`` gives each measurement its per-frame verdicts,
    ``judge`` each closed window its verdict, ``resources`` each closed window the device's
    figures; ``clock`` closes live windows. ``on_signal`` receives the no-signal changes
    (``SignalChange``) the checks find (``measurement.signal``) and, on a live monitor whose
    checks have a SignalTracker (``check.signal``), the silences of the source; it is called
    on the monitor thread, and its failures are logged and counted in ``errors`` like the
    sink's. ``observer`` sees every measured frame (evidence capture); its failures are
    counted in ``errors`` too. ``make_monitor`` builds one from the configuration.
    """

    def __init__(
        self,
        reference: ReferenceProfile,
        measurer: FrameMeasurer,
        sink: Sink,
        settings: MonitorSettings | None = None,
        *,
        check: FrameCheck | None = None,
        judge: WindowJudge | None = None,
        resources: ResourceProbe | None = None,
        clock: Clock | None = None,
        on_signal: SignalSink | None = None,
        observer: FrameObserver | None = None,
        windows: WindowFactory | None = None,
    ) -> None:
        settings = settings or MonitorSettings()
        self.reference = reference
        self.measurer = measurer
        self.sink = sink
        self.settings = settings
        self.every_nth = settings.every_nth
        self._rate_cap = RateCap(settings.max_fps)
        self.live = settings.live
        self.lossless = settings.lossless
        self.clock = clock or SystemClock()
        self.resources = resources
        self.judge = judge
        self.check = check
        self.on_signal = on_signal
        self.observer = observer
        self.windows = windows
        """Opens each window (context references, reference switches); None: one
        accumulator on ``reference``."""
        tracker = getattr(check, "signal", None)
        self._silence: SignalTracker | None = (
            tracker if self.live and isinstance(tracker, SignalTracker) else None)
        """Watches a live source's silences (no frames), on the worker thread."""
        self._last_frame_at = self.clock.now()
        """Clock time the last frame was observed (or the monitor started)."""
        self._tally = FrameTally(settings.window_seconds, settings.window_frames,
                                 self._wake_for_checks)
        self._lock = threading.Lock()
        """Held around every use of ``_tally`` (but ``observe``'s append to its buffer)."""
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=settings.queue_size)
        self._accumulators: dict[int, OpenWindow] = {}
        self._last_key: int | None = None
        """Window key of the last measured frame (worker thread only)."""
        self._observed = 0
        self._closed = False
        self.errors = 0
        self.measured = 0
        """Frames measured so far (written by the worker thread only)."""
        self._worker = threading.Thread(target=self._run, name="edgewatch-monitor", daemon=True)
        self._worker.start()

    # -- inference thread -------------------------------------------------------------

    def observe(self, frame: Frame, result: InferenceResult | DeferredResult | None,
                inference_error: bool = False, *, resolve_now: bool = False) -> bool:
        """Count a frame and queue it for measurement; False when it was not queued.

        The inference thread's whole share of the monitoring: counters, the sampling
        decision and, for a sampled frame, a put on a bounded queue. A DeferredResult is
        decoded on the monitor thread, so its output arrays must not be reused by the caller
        (``InferenceEngine`` gets new ones from every ``session.run``); ``resolve_now``
        decodes a sampled frame's result here, before returning, for callers that reuse
        their arrays (an application's own loop: ``AppMonitor``). With ``lossless``
        (replays), a full queue makes the caller wait instead of skipping.
        """
        t = frame.timestamp
        if self._silence is not None:
            self._last_frame_at = self.clock.now()
        n = self._observed
        self._observed = n + 1
        cap = self._rate_cap  # most frames fall in its skip range: no call
        sampled = not n % self.every_nth and not cap.skip_from <= t < cap.skip_until \
            and cap(t)
        tally = self._tally
        if not sampled and t < tally.buffer_until and not resolve_now:
            buffer = tally.buffer  # counted later, a batch at a time (BUFFERED)
            buffer.append((t, result, inference_error, frame.image is None))
            if len(buffer) >= tally.buffer_limit:
                with self._lock:
                    tally.count_buffered()
            return False
        with self._lock:
            tally.count_buffered()
            slot = tally.count(t, result, inference_error, frame.image is None, resolve_now)
            if not sampled:
                slot.counts.sampled_out += 1
                return False
            if resolve_now and isinstance(result, DeferredResult):
                result = result.resolve()
            item = (slot.key, frame, result, inference_error)
            try:
                self._queue.put_nowait(item)
                return True
            except queue.Full:
                if not self.lossless:
                    slot.counts.dropped += 1
                    return False
        # lossless replay: wait for the worker
        self._queue.put(item)
        return True

    def _wake_for_checks(self) -> None:
        with contextlib.suppress(queue.Full):  # a full queue: the worker checks them next
            self._queue.put_nowait(_CHECK)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every frame queued so far has been measured (and every frame observed
        counted in its window).

        False when ``timeout`` seconds passed first or the worker has stopped (after
        ``close``). Not to be called from the sink, which runs on the worker.
        """
        if threading.current_thread() is self._worker:
            raise RuntimeError("Monitor.drain() called from the monitor thread")
        with self._lock:
            self._tally.count_buffered()
        deadline = None if timeout is None else time.monotonic() + timeout
        q = self._queue
        with q.all_tasks_done:
            while q.unfinished_tasks:
                if not self._worker.is_alive():
                    return False
                wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if wait <= 0:
                    return False
                q.all_tasks_done.wait(wait)
        return True

    def cpu_seconds(self) -> float:
        """CPU time the monitor thread has used so far (its thread CPU clock; NaN where the
        platform has none, or once the thread has ended)."""
        ident = self._worker.ident
        if ident is None or not self._worker.is_alive():
            return math.nan
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(ident))
        except (AttributeError, OSError):
            return math.nan

    def close(self, timeout: float | None = None) -> None:
        """Measure what is queued, emit every open window and stop the worker."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._tally.count_buffered()
        self._queue.put(_STOP)
        self._worker.join(timeout)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- worker thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.5 if self.live else None)
            except queue.Empty:
                item = None
            try:
                self._count_nonfinite()  # before any window of those frames closes
                if item is None:
                    self._tick()
                elif item is _STOP:
                    self._flush(None)
                elif item is not _CHECK:
                    self._measure(*item)
                if self._silence is not None and item is not _STOP:
                    self._watch_silence()
            except Exception:  # nothing may stop the worker: frames would pile up unseen
                self.errors += 1
                log.exception("monitor worker error")
            finally:
                if item is not None:
                    self._queue.task_done()
            if item is _STOP:
                return
            item = None  # not holding the last frame (about a megabyte) while waiting

    def _count_nonfinite(self) -> None:
        """Run the finite checks of the frames observed since the last look (sampled or not)
        and count the failures in their windows, which are still open: a window closes only
        on this thread, after this."""
        with self._lock:
            unchecked = self._tally.take_unchecked()
        failed = [counts for counts, result in unchecked if result.nonfinite]
        if failed:
            with self._lock:
                for counts in failed:
                    counts.nonfinite_outputs += 1

    def _measure(self, key: int, frame: Frame, result: InferenceResult | DeferredResult | None,
                 inference_error: bool = False) -> None:
        if isinstance(result, DeferredResult):
            try:
                result = result.resolve()
            except Exception:  # an adapter bug must not stop the monitor
                self.errors += 1
                log.exception("could not decode the outputs of frame %d", frame.index)
                return
        try:
            m = self.measurer(frame, result)
            m.inference_error = inference_error
            if self.check is not None:
                self.check.check(m)
        except Exception:  # a bad frame must never stop the monitor
            self.errors += 1
            log.exception("could not measure frame %d", frame.index)
            return
        if m.signal is not None:
            self._report_signal(m.signal)
        if key != self._last_key:  # earlier windows can only be complete when the key moves
            self._flush(key - 1)
            self._last_key = key
        if self.observer is not None:  # after the flush: alerts of closed windows come first
            self._observe(key, frame, result, m)
        acc = self._accumulators.get(key)
        if acc is None:
            acc = self._accumulators[key] = (
                self.windows.open(0.0, 0.0) if self.windows is not None
                else WindowAccumulator(self.reference, 0.0, 0.0))
        acc.add(m)
        self.measured += 1

    def _observe(self, key: int, frame: Frame, result: InferenceResult | None,
                 m: FrameMeasurement) -> None:
        assert self.observer is not None
        with self._lock:
            slot = self._tally.window(key)
        window = (slot.start, slot.end) if slot is not None else (frame.timestamp,) * 2
        try:
            self.observer.observe(frame, result, m, window)
        except Exception:
            self.errors += 1
            log.exception("frame observer failed on frame %d", frame.index)

    def _watch_silence(self) -> None:
        assert self._silence is not None
        change = self._silence.silence(self.clock.now(), self._last_frame_at)
        if change is not None:
            self._report_signal(change)

    def _report_signal(self, change: SignalChange) -> None:
        if change.lost:
            log.warning("no signal (%s) since %.3f", change.fault, change.since)
        else:
            log.info("signal back (was %s since %.3f)", change.fault, change.since)
        if self.on_signal is None:
            return
        try:
            self.on_signal(change)
        except Exception:
            self.errors += 1
            log.exception("signal sink failed; %s change of %.3f not delivered",
                          change.fault, change.at)

    def _tick(self) -> None:
        with self._lock:
            buffered = self._tally.count_buffered()
            key = self._tally.expire(self.clock.now())
        if key is not None:
            if buffered:
                self._count_nonfinite()  # the frames just counted, before their window closes
            self._flush(key)

    def _flush(self, through: int | None) -> None:
        """Emit every window up to key ``through`` (all windows when None)."""
        with self._lock:
            slots = self._tally.close(through)
        for slot in slots:
            self._emit(slot)

    def _emit(self, slot: WindowSlot) -> None:
        acc = self._accumulators.pop(slot.key, None)
        if acc is not None:
            summary = acc.summary
        elif self.windows is not None:
            summary = self.windows.empty(slot.start, slot.end)
        else:
            summary = WindowSummary.empty(self.reference, slot.start, slot.end)
        summary.start, summary.end = slot.start, slot.end
        monitored = summary.frames.monitored
        summary.frames = slot.counts
        summary.frames.monitored = monitored
        if self.resources is not None:
            try:
                summary.resources = self.resources.sample()
            except Exception:  # the window goes out without resource figures
                self.errors += 1
                log.exception("could not sample resources")
        try:
            if self.judge is not None:
                summary.extra[self.judge.name] = self.judge.judge(summary)
            self.sink(summary)
        except Exception:
            self.errors += 1
            log.exception("window sink failed; window %.3f-%.3f not delivered",
                          slot.start, slot.end)
