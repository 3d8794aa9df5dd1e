"""The progress bar (edgewatch.agent.progress): drawn only on a terminal or when forced, at
most every 0.2 s."""

from __future__ import annotations

import io

import pytest

from edgewatch.agent import progress
from edgewatch.agent.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(progress, "time", fake)
    return fake


def test_silent_when_the_stream_is_not_a_terminal(clock: FakeTime) -> None:
    out = io.StringIO()
    p = Progress(10, "replay", stream=out)
    p.update(5)
    p.close()
    assert not p.enabled and p.count == 5 and out.getvalue() == ""


def test_a_terminal_gets_a_bar_with_the_count_rate_and_a_final_newline(
        clock: FakeTime) -> None:
    out = Terminal()
    p = Progress(10, "replay", stream=out)
    clock.t += 2.0
    p.update(5)
    assert out.getvalue() == "\rreplay [" + "#" * 15 + " " * 15 + "] 5/10 2.5 fps"
    clock.t += 0.1
    p.update(2)  # within 0.2 s of the last drawing: not drawn
    assert out.getvalue().count("\r") == 1
    clock.t += 0.9
    p.update(5)
    assert out.getvalue().endswith("\rreplay [" + "#" * 30 + "] 12/10 4.0 fps")
    p.close()
    assert out.getvalue().endswith("] 12/10 4.0 fps\n")


def test_without_a_total_it_counts_frames(clock: FakeTime) -> None:
    out = io.StringIO()
    p = Progress(None, "profile", stream=out, force=True)
    clock.t += 1.0
    p.update(3)
    p.close()
    assert out.getvalue() == "\rprofile 3 frames 3.0 fps\rprofile 3 frames 3.0 fps\n"
