"""Frames to windows (edgewatch.agent.window.assigner): by time, by frame count, across
gaps, and closed by the clock when no frame comes."""

from __future__ import annotations

from edgewatch.agent.window.assigner import WindowAssigner


def spans(assigner: WindowAssigner) -> list[tuple[float, float, int]]:
    return [(s.start, s.end, s.frames) for s in assigner.slots.values()]


def test_windows_follow_each_other_without_gaps_or_overlaps() -> None:
    a = WindowAssigner(10.0)
    keys = [a.assign(t).key for t in (100.0, 104.0, 109.9, 110.0, 125.0, 129.0)]
    assert keys == [0, 0, 0, 1, 2, 2]
    assert spans(a) == [(100.0, 110.0, 3), (110.0, 120.0, 1), (120.0, 130.0, 2)]


def test_a_gap_longer_than_a_window_starts_at_the_next_frame() -> None:
    a = WindowAssigner(10.0)
    a.assign(100.0)
    a.assign(145.5)
    assert spans(a) == [(100.0, 110.0, 1), (145.5, 155.5, 1)]


def test_max_frames_closes_a_window_early_at_the_next_frame() -> None:
    a = WindowAssigner(10.0, max_frames=2)
    for t in (100.0, 101.0, 102.0, 103.0, 104.0):
        a.assign(t)
    assert spans(a) == [(100.0, 102.0, 2), (102.0, 104.0, 2), (104.0, 114.0, 1)]


def test_the_clock_closes_a_window_without_frames() -> None:
    a = WindowAssigner(10.0)
    slot = a.assign(100.0)
    assert a.expire(109.0) is None and a.current is slot
    assert a.expire(110.0) == slot.key and a.current is None
    assert a.expire(200.0) is None
    assert a.assign(111.0).start == 111.0  # the next window opens with the next frame


def test_pop_through_hands_out_closed_windows_oldest_first() -> None:
    a = WindowAssigner(1.0)
    for t in range(5):
        a.assign(float(t))
    assert [s.key for s in a.pop_through(2)] == [0, 1, 2]
    assert sorted(a.slots) == [3, 4]
    assert a.pop_through(2) == []
