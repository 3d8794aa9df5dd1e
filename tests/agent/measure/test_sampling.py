"""RateCap: which frames the monitor measures under features.max_fps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgewatch.agent.measure.sampling import RateCap

EPOCH = 1_767_225_600.0  # 2026-01-01, as wall-clock timestamps of a live source


def kept(times: list[float], max_fps: float) -> list[int]:
    cap = RateCap(max_fps)
    return [i for i, t in enumerate(times) if cap(t)]


@pytest.mark.parametrize("fps,every", [(10.0, 4), (25.0, 10), (30.0, 12), (5.0, 2)])
@pytest.mark.parametrize("start", [0.0, EPOCH])
def test_a_regular_stream_is_sampled_on_a_regular_stride_for_hours(
        fps: float, every: int, start: float) -> None:
    times = [start + i / fps for i in range(int(fps * 3600))]  # one hour
    got = kept(times, 2.5)
    assert got == list(range(0, len(times), every))  # no slip, however large the timestamps


def test_jittered_wall_clock_keeps_the_average_rate() -> None:
    rng = np.random.default_rng(1)
    times = list(EPOCH + np.arange(30 * 600) / 30 + rng.uniform(-0.004, 0.004, 30 * 600))
    got = kept(times, 2.5)
    assert len(got) == pytest.approx(600 * 2.5, abs=2)
    gaps = np.diff(np.asarray(times)[got])
    # the first frame at or after each grid point: within one frame of the interval
    assert gaps.min() >= 0.4 - 1 / 30 - 0.01 and gaps.max() <= 0.4 + 1 / 30 + 0.01


def test_small_backward_jitter_is_skipped_and_a_restart_is_measured() -> None:
    cap = RateCap(2.5)
    assert [cap(t) for t in (10.0, 10.1, 10.05, 10.4)] == [True, False, False, True]
    assert cap(10.3) is False  # 0.1 s back from the last measured frame: jitter
    assert cap(3.0) is True   # far back: the source restarted, the grid starts again
    assert [cap(t) for t in (3.1, 3.4)] == [False, True]


def test_non_finite_times_are_measured_and_leave_the_grid_alone() -> None:
    cap = RateCap(2.5)
    assert [cap(t) for t in (0.0, math.nan, 0.1, math.inf, 0.4)] == [True, True, False, True, True]


def test_no_cap() -> None:
    cap = RateCap(0.0)
    assert all(cap(t) for t in (0.0, 0.0, 0.01, -5.0, math.nan))


def test_the_skip_range_is_exactly_the_frames_a_call_turns_down() -> None:
    """``skip_from <= t < skip_until`` (what the monitor tests before calling) holds for
    exactly the frames the call turns down, on jittered, restarting and backward times, and
    is empty without a cap or before the first frame."""
    rng = np.random.default_rng(7)
    times = EPOCH + np.cumsum(rng.choice([1 / 30, 1 / 30, 0.0, -0.05, 2.0, 0.4],
                                         size=5000, p=[0.6, 0.2, 0.05, 0.05, 0.05, 0.05]))
    for max_fps in (2.5, 7.0):
        cap = RateCap(max_fps)
        turned_down = 0
        for t in times:
            skip = cap.skip_from <= t < cap.skip_until
            assert cap(t) is not skip
            turned_down += skip
        assert 0 < turned_down < len(times)
    none = RateCap(0.0)
    assert none(1.0) and not none.skip_from <= 1.0 < none.skip_until
