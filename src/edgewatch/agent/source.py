"""Frame sources: video files, image directories, cameras and network streams.

Recorded sources (files, directories) time-stamp frames from their own frame rate;
live sources (camera index, rtsp/http URL) use the injected clock and reopen with
exponential backoff when the stream fails. Undecodable frames are yielded with
``image=None`` so they are counted, never fatal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edgewatch.agent.records import Frame
from edgewatch.clock import Clock, SystemClock
from edgewatch.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
DEFAULT_DIR_FPS = 1.0
MAX_CONSECUTIVE_DECODE_ERRORS = 25


class FrameSource(Protocol):
    live: bool
    description: str

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Yield frames until the source ends or ``stop`` is set."""
        ...


def _as_colour(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class VideoFileSource:
    """A video file, read as fast as the consumer takes frames."""

    live = False

    def __init__(self, path: str, fps: float = 0.0, start_time: float = 0.0,
                 first: int = 0, last: int | None = None) -> None:
        self.path = path
        self.description = path
        self.first, self.last = first, last
        if not Path(path).is_file():
            raise SourceError(f"video file not found: {path}")
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise SourceError(f"cannot open video file {path} (unsupported or corrupt)")
        native = cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        self.fps = fps or (native if native > 0 else 25.0)
        self.start_time = start_time

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        cap = cv2.VideoCapture(self.path)
        try:
            index, failures = 0, 0
            while not stop.is_set() and (self.last is None or index <= self.last):
                ok = cap.grab()
                if not ok:
                    if index >= self.frame_count - 1 or failures >= MAX_CONSECUTIVE_DECODE_ERRORS:
                        return
                    failures += 1
                    image = None
                else:
                    ok, image = cap.retrieve()
                    image = _as_colour(image) if ok and image is not None else None
                    failures = 0 if image is not None else failures + 1
                if index >= self.first:
                    yield Frame(index, self.start_time + index / self.fps, image)
                index += 1
        finally:
            cap.release()


class ImageDirSource:
    """Image files of a directory, in file-name order; unreadable files count as decode errors."""

    live = False

    def __init__(self, path: str, fps: float = 0.0, start_time: float = 0.0,
                 first: int = 0, last: int | None = None) -> None:
        root = Path(path)
        self.description = path
        self.files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"no image files in directory {path}")
        self.fps = fps or DEFAULT_DIR_FPS
        self.start_time = start_time
        self.first, self.last = first, last

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        stop_at = len(self.files) if self.last is None else min(self.last + 1, len(self.files))
        for index in range(self.first, stop_at):
            if stop.is_set():
                return
            image = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
            yield Frame(index, self.start_time + index / self.fps, image)


class LiveSource:
    """A camera (index) or network stream (URL), reopened with backoff when it fails."""

    live = True

    def __init__(self, uri: str, clock: Clock | None = None, initial_backoff: float = 1.0,
                 max_backoff: float = 60.0) -> None:
        self.uri = uri
        self.description = uri
        self.clock = clock or SystemClock()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.reconnects = 0
        self.on_retry: Callable[[float], None] | None = None
        """Called with the wait before each reopening (a supervisor counts it as progress)."""

    def _open(self) -> cv2.VideoCapture:
        target: int | str = int(self.uri) if self.uri.isdigit() else self.uri
        return cv2.VideoCapture(target)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        index, backoff = 0, self.initial_backoff
        while not stop.is_set():
            cap = self._open()
            if not cap.isOpened():
                log.warning("cannot open %s; retrying in %.1f s", self.uri, backoff)
                if self.on_retry is not None:
                    self.on_retry(backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2.0, self.max_backoff)
                continue
            backoff = self.initial_backoff
            try:
                while not stop.is_set():
                    ok, image = cap.read()
                    if not ok or image is None:
                        break
                    yield Frame(index, self.clock.now(), _as_colour(image))
                    index += 1
            finally:
                cap.release()
            if not stop.is_set():
                self.reconnects += 1
                log.warning("stream %s ended; reopening in %.1f s", self.uri, backoff)
                if self.on_retry is not None:
                    self.on_retry(backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2.0, self.max_backoff)


class PacedSource:
    """A recorded source played in real time, as a camera would deliver it (``run``).

    Each frame is held back until the clock reaches its timestamp, so windows are stamped
    with the time their frames were actually processed and never end in the future. A
    consumer slower than the file's rate is not waited for (frames stay late, none is
    dropped). ``replay`` reads the same files unpaced, as fast as it can."""

    live = False

    def __init__(self, source: FrameSource, clock: Clock) -> None:
        self.source = source
        self.clock = clock
        self.description = source.description

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for frame in self.source.frames(stop):
            delay = frame.timestamp - self.clock.now()
            if delay > 0 and stop.wait(delay):
                return
            yield frame


def open_source(uri: str, *, fps: float = 0.0, clock: Clock | None = None,
                start_time: float | None = None, first: int = 0, last: int | None = None,
                initial_backoff: float = 1.0, max_backoff: float = 60.0) -> FrameSource:
    """The right source for ``uri``: directory, video file, camera index or URL."""
    if not uri:
        raise SourceError("no source given (source.uri or --source)")
    if uri.isdigit() or "://" in uri:
        return LiveSource(uri, clock, initial_backoff, max_backoff)
    t0 = (clock or SystemClock()).now() if start_time is None else start_time
    if Path(uri).is_dir():
        return ImageDirSource(uri, fps, t0, first, last)
    return VideoFileSource(uri, fps, t0, first, last)


def parse_range(text: str) -> tuple[int, int | None]:
    """'0:400' -> (0, 399); '100:' -> (100, None): a half-open range of frame indices."""
    try:
        a, _, b = text.partition(":")
        first = int(a) if a else 0
        last = int(b) - 1 if b else None
    except ValueError as exc:
        raise SourceError(f"bad frame range {text!r}: expected START:END, e.g. 0:400") from exc
    if first < 0 or (last is not None and last < first):
        raise SourceError(f"bad frame range {text!r}: expected 0 <= START < END")
    return first, last
