"""Counting observed frames in their windows: the inference thread's share of the monitor.

``FrameTally`` assigns each frame to its window (``WindowAssigner``) and counts it there:
seen, decode and inference errors, NaN or Inf outputs. It keeps the frames whose finite
check is left to the monitor thread (``unchecked``), and buffers the frames not sampled
that fall in the open window, to count them a batch at a time. Both keep the frames'
output arrays: each list holds at most HELD_BYTES of them (and a frame). Not thread-safe
by itself: the monitor holds its lock around every call; only ``observe`` appends to
``buffer`` without it (a deque: ``count_buffered`` takes from the other end).
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

from edgewatch.agent.records import DeferredResult, InferenceResult
from edgewatch.agent.window.assigner import WindowAssigner, WindowSlot
from edgewatch.agent.window.summary import FrameCounts

__all__ = ["BUFFERED", "HELD_BYTES", "MAX_UNCHECKED", "WAKE_UNCHECKED", "Buffered",
           "FrameTally"]

MAX_UNCHECKED = 64
"""Frames whose finite check waits for the worker, at most, and HELD_BYTES of their output
arrays, kept until then (beyond, frames are checked at once, on the inference thread).
The WAKE_UNCHECKED-th frame, or the one that brings the arrays past half of HELD_BYTES,
wakes the worker, when no sampled frame has (between two frames measured under
``max_fps``)."""
WAKE_UNCHECKED = MAX_UNCHECKED // 2
BUFFERED = 32
"""Frames not sampled that ``observe`` keeps before counting them in their window, a batch
at a time under the lock: counting each one as it comes costs the inference thread more,
right after ``session.run`` has left the processor's caches cold. Fewer when their output
arrays would hold more than HELD_BYTES (``buffer_limit``, from the last frame counted)."""
HELD_BYTES = 4 << 20
"""The output arrays each of the two lists of frames (buffered, unchecked) keeps, at most
(plus one frame's)."""

Buffered = tuple[float, InferenceResult | DeferredResult | None, bool, bool]
"""A frame ``observe`` buffered: stream time, result, inference error, no image."""


class FrameTally:
    """The windows' frame counts, kept as frames are observed (see the module docstring);
    ``wake`` is called when WAKE_UNCHECKED frames wait for their finite check."""

    def __init__(self, seconds: float, max_frames: int, wake: Callable[[], None]) -> None:
        self.assigner = WindowAssigner(seconds, max_frames)
        self.buffer: collections.deque[Buffered] = collections.deque()
        self.buffer_limit = BUFFERED
        """Frames ``observe`` buffers before counting them: BUFFERED, or as many as
        HELD_BYTES holds of the last counted frame's output arrays."""
        self.buffer_until = -math.inf
        """Frames before this stream time fall in the open window (its end), so ``observe``
        may buffer them; -inf: no window open, or windows that close on a frame count."""
        self._buffering = max_frames == 0
        self.unchecked: list[tuple[FrameCounts, DeferredResult]] = []
        """Frames whose outputs' finite check is left to the worker (at most MAX_UNCHECKED
        and HELD_BYTES of output arrays: beyond, their check runs here, at once)."""
        self.unchecked_bytes = 0
        self._previous_time = self._last_time = math.nan
        """Stream times of the last two observed frames (the last window's end)."""
        self._wake = wake

    def count(self, t: float, result: InferenceResult | DeferredResult | None,
              inference_error: bool, no_image: bool, resolve_now: bool = False) -> WindowSlot:
        """Count one observed frame in its window; the window's slot."""
        slot = self.assigner.assign(t)
        self._previous_time, self._last_time = self._last_time, t
        counts = slot.counts
        counts.seen += 1
        if inference_error:
            counts.inference_errors += 1
        elif result is None and no_image:
            counts.decode_errors += 1
        deferred = isinstance(result, DeferredResult) and self._defer(counts, result,
                                                                     resolve_now)
        if result is not None and not deferred and result.nonfinite:
            counts.nonfinite_outputs += 1
        current = self.assigner.current
        self.buffer_until = current.end if current is not None and self._buffering \
            else -math.inf
        return slot

    def _defer(self, counts: FrameCounts, result: DeferredResult, resolve_now: bool) -> bool:
        """Leave the frame's finite check to the worker, if it has not run and the frame
        fits MAX_UNCHECKED and HELD_BYTES; whether it was left. The frame's outputs' size
        sets how many frames ``observe`` buffers (``buffer_limit``)."""
        nbytes = result.nbytes
        self.buffer_limit = max(1, min(BUFFERED, HELD_BYTES // max(nbytes, 1)))
        unchecked, held = self.unchecked, self.unchecked_bytes
        if (type(result.finite) is bool or resolve_now or len(unchecked) >= MAX_UNCHECKED
                or held + nbytes > HELD_BYTES):
            return False
        unchecked.append((counts, result))
        self.unchecked_bytes = held + nbytes
        if len(unchecked) == WAKE_UNCHECKED or held < HELD_BYTES // 2 <= held + nbytes:
            self._wake()  # no sampled frame has woken the worker for a while
        return True

    def count_buffered(self) -> bool:
        """Count the frames ``observe`` buffered, in order; whether there were any."""
        buffer = self.buffer
        if not buffer:
            return False
        while buffer:
            t, result, inference_error, no_image = buffer.popleft()
            self.count(t, result, inference_error, no_image).counts.sampled_out += 1
        return True

    def expire(self, now: float) -> int | None:
        """Close the open window if ``now`` is past its end; its key."""
        key = self.assigner.expire(now)
        if key is not None:
            self.buffer_until = -math.inf
        return key

    def take_unchecked(self) -> list[tuple[FrameCounts, DeferredResult]]:
        unchecked, self.unchecked = self.unchecked, []
        self.unchecked_bytes = 0
        return unchecked

    def window(self, key: int) -> WindowSlot | None:
        """The window of key ``key`` while it is open."""
        return self.assigner.slots.get(key)

    def close(self, through: int | None) -> list[WindowSlot]:
        """Take every window up to key ``through``, oldest first; all of them when None (the
        frames have ended: the last window is cut to its frames, ``_cut_last_window``)."""
        if through is None:
            self._cut_last_window()
            self.assigner.current = None
            return self.assigner.pop_through(1 << 62)
        if through < 0 or not any(k <= through for k in self.assigner.slots):
            return []
        return self.assigner.pop_through(through)

    def _cut_last_window(self) -> None:
        """The window open when the frames end covers its frames only: it ends one frame
        interval (the time between the last two frames) after its last frame, as each of
        its frames covers one interval; at the last frame when no interval is known (a
        single frame). A window whose frames reach its full length (to within half an
        interval: timestamps are not exact) keeps it."""
        current = self.assigner.current
        last = self._last_time
        if current is None or not math.isfinite(last):
            return
        interval = last - self._previous_time
        step = interval if math.isfinite(interval) and interval > 0 else 0.0
        covered = last + step
        if covered < current.end - step / 2:
            current.end = max(current.start, covered)
