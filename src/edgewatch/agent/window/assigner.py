"""Assigning frames to windows, on the inference thread, in O(1).

A window opens with the first frame after the previous one closed and closes when a frame
arrives ``seconds`` after its start, when it holds ``max_frames`` frames (if set), or when
a live monitor's clock passes its end with no frame at all.
"""

from __future__ import annotations

import dataclasses

from edgewatch.agent.window.summary import FrameCounts


@dataclasses.dataclass
class WindowSlot:
    key: int
    start: float
    end: float
    frames: int = 0
    counts: FrameCounts = dataclasses.field(default_factory=FrameCounts)


class WindowAssigner:
    """Keys frames by window; not thread-safe by itself (the monitor holds a lock)."""

    def __init__(self, seconds: float, max_frames: int = 0) -> None:
        self.seconds = seconds
        self.max_frames = max_frames
        self.current: WindowSlot | None = None
        self.slots: dict[int, WindowSlot] = {}
        self._next_key = 0

    def assign(self, timestamp: float) -> WindowSlot:
        cur = self.current
        if (cur is None or timestamp >= cur.end
                or (self.max_frames > 0 and cur.frames >= self.max_frames)):
            self.current = cur = self._open(cur, timestamp)
        cur.frames += 1
        return cur

    def _open(self, previous: WindowSlot | None, timestamp: float) -> WindowSlot:
        if previous is None or timestamp >= previous.end + self.seconds:
            start = timestamp  # first window, or a gap with no frames at all
        elif timestamp < previous.end:  # closed early by its frame count
            previous.end = start = timestamp
        else:
            start = previous.end
        slot = WindowSlot(self._next_key, start, start + self.seconds)
        self._next_key += 1
        self.slots[slot.key] = slot
        return slot

    def expire(self, now: float) -> int | None:
        """Close the current window if ``now`` is past its end; return its key."""
        cur = self.current
        if cur is not None and now >= cur.end:
            self.current = None
            return cur.key
        return None

    def pop_through(self, key: int) -> list[WindowSlot]:
        """Remove and return every slot with a key up to ``key``, oldest first."""
        done = sorted(k for k in self.slots if k <= key)
        return [self.slots.pop(k) for k in done]
