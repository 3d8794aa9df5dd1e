"""Frame sources: files, directories, ranges, corrupt frames, missing inputs."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgewatch.agent.source import ImageDirSource, LiveSource, open_source, parse_range
from edgewatch.errors import SourceError


def test_video_file_timestamps_from_its_frame_rate(vtest: Path) -> None:
    src = open_source(str(vtest), start_time=1000.0, first=10, last=14)
    frames = list(src.frames(threading.Event()))
    assert [f.index for f in frames] == [10, 11, 12, 13, 14]
    assert [f.timestamp for f in frames] == pytest.approx([1001.0, 1001.1, 1001.2, 1001.3, 1001.4])
    assert frames[0].image is not None and frames[0].image.shape == (576, 768, 3)


def test_fps_override(vtest: Path) -> None:
    src = open_source(str(vtest), fps=2.0, start_time=0.0, first=0, last=2)
    assert [f.timestamp for f in src.frames(threading.Event())] == [0.0, 0.5, 1.0]


def test_image_directory_sorted_with_corrupt_file_counted(tmp_path: Path) -> None:
    for name, value in (("b.png", 20), ("a.png", 10), ("c.jpg", 30)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), value, np.uint8))
    (tmp_path / "b2.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(str(tmp_path), fps=5.0, start_time=0.0)
    assert isinstance(src, ImageDirSource)
    frames = list(src.frames(threading.Event()))
    assert [f.image[0, 0, 0] if f.image is not None else None for f in frames] == [
        10, 20, None, pytest.approx(30, abs=2)]
    assert [f.timestamp for f in frames] == [0.0, 0.2, 0.4, 0.6]


def test_stop_event_ends_iteration(vtest: Path) -> None:
    stop = threading.Event()
    n = 0
    for _ in open_source(str(vtest), start_time=0.0).frames(stop):
        n += 1
        if n == 3:
            stop.set()
    assert n == 3


@pytest.mark.parametrize("uri", ["nowhere/video.avi", ""])
def test_missing_source_is_a_clear_error(uri: str) -> None:
    with pytest.raises(SourceError, match=r"not found|no source"):
        open_source(uri)


def test_unreadable_video_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "clip.avi"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="cannot open video file"):
        open_source(str(bad))


def test_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no image files"):
        open_source(str(tmp_path))


def test_live_source_reopens_with_backoff() -> None:
    src = LiveSource("rtsp://127.0.0.1:9/none", initial_backoff=0.01, max_backoff=0.02)
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    assert list(src.frames(stop)) == []
    timer.cancel()
    assert isinstance(open_source("0"), LiveSource)


@pytest.mark.parametrize(("text", "expected"), [("0:400", (0, 399)), ("100:", (100, None)),
                                                (":10", (0, 9))])
def test_parse_range(text: str, expected: tuple[int, int | None]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["a:b", "10:5", "-1:3"])
def test_bad_range(text: str) -> None:
    with pytest.raises(SourceError, match="bad frame range"):
        parse_range(text)


def test_run_plays_a_recorded_file_in_real_time(vtest: Path) -> None:
    """``run`` on a video file: each frame is delivered no earlier than its timestamp, so
    no window is stamped in the future (``replay`` reads as fast as it can)."""
    import time

    from edgewatch.agent.source import PacedSource
    from edgewatch.agent.source_config import open_live
    from edgewatch.clock import SystemClock
    from edgewatch.config.agent import parse_config

    cfg = parse_config({"source": {"uri": str(vtest), "fps": 20.0}})
    source = open_live(cfg, SystemClock())
    assert isinstance(source, PacedSource) and not source.live
    stop = threading.Event()
    began = time.time()
    lateness = []
    for frame in source.frames(stop):
        lateness.append(time.time() - frame.timestamp)
        if frame.index == 10:
            stop.set()
    assert min(lateness) >= 0.0  # never ahead of its own timestamp
    assert time.time() - began >= 0.45  # 10 frame steps at 20 fps


def test_a_paced_source_stops_while_waiting(vtest: Path) -> None:
    import time

    from edgewatch.agent.source import PacedSource
    from edgewatch.clock import SystemClock

    source = PacedSource(open_source(str(vtest), fps=0.5, start_time=time.time()),
                         SystemClock())
    stop = threading.Event()
    frames = source.frames(stop)
    next(frames)  # the first frame is due now
    threading.Timer(0.2, stop.set).start()
    began = time.time()
    assert list(frames) == []  # the second is due in 2 s: the stop ends the wait
    assert time.time() - began < 1.5
