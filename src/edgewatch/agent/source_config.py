"""The sources the commands read, opened as the configuration says: a recording for
``profile build`` and ``replay``, the configured camera or stream for ``run``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgewatch.agent.source import FrameSource, PacedSource, open_source, parse_range
from edgewatch.clock import Clock, SystemClock

if TYPE_CHECKING:
    from edgewatch.config.agent import AgentConfig


def open_recorded(cfg: AgentConfig, path: str, *, fps: float = 0.0, frames: str | None = None,
                  start: float = 0.0) -> FrameSource:
    """A video file or image folder; ``frames`` is a range ``START:END`` (END exclusive),
    ``fps`` (default: ``source.fps``, else the file's own) sets the timestamps from
    ``start``."""
    first, last = parse_range(frames) if frames else (0, None)
    return open_source(path, fps=fps or cfg.source.fps, start_time=start, first=first,
                       last=last)


def open_live(cfg: AgentConfig, clock: Clock | None = None) -> FrameSource:
    """The configured source (``source.uri``), reconnecting as ``source`` says. A video
    file or image folder is played in real time from now (``PacedSource``), as a camera
    would deliver it; ``replay`` is the command that reads recordings as fast as it can."""
    clock = clock or SystemClock()
    source = open_source(cfg.source.uri, fps=cfg.source.fps, clock=clock,
                         initial_backoff=cfg.source.reconnect_initial_s,
                         max_backoff=cfg.source.reconnect_max_s)
    return source if source.live else PacedSource(source, clock)


def expected_frames(source: FrameSource) -> int | None:
    """How many frames a recorded source will give (None when unknown, e.g. live)."""
    count = getattr(source, "frame_count", None) or len(getattr(source, "files", []) or [])
    if not count:
        return None
    first = getattr(source, "first", 0)
    last = getattr(source, "last", None)
    end = count if last is None else min(count, last + 1)
    return max(end - first, 0)
