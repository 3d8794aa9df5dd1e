"""The monitor thread: windows, counting of every frame, drops when the queue is full."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from edgewatch.agent.delivery.sinks import ListSink
from edgewatch.agent.measure.frame import FrameMeasurement, FrameMeasurer
from edgewatch.agent.measure.image import ImageFeatureExtractor
from edgewatch.agent.measure.outputs import OutputFeatureExtractor
from edgewatch.agent.records import DeferredResult, Detections, Frame, InferenceResult, Timings
from edgewatch.agent.window.monitor import Monitor, MonitorSettings
from edgewatch.agent.window.monitor_parts import ResourceProbe, WindowJudge
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.clock import ManualClock

RNG = np.random.default_rng(0)


def image(level: int) -> np.ndarray:
    return np.clip(level + RNG.normal(0, 8, (48, 64, 3)), 0, 255).astype(np.uint8)


def result(n: int) -> InferenceResult:
    boxes = np.tile(np.array([[0.1, 0.1, 0.3, 0.5]], np.float32), (n, 1))
    det = Detections(boxes, np.full(n, 0.8, np.float32), np.ones(n, np.int64), 0.8 if n else 0.0)
    return InferenceResult(det, Timings(1.0, 10.0, 0.5))


def measurer() -> FrameMeasurer:
    return FrameMeasurer(ImageFeatureExtractor(64), OutputFeatureExtractor(0.5, 0.1))


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    b = ReferenceBuilder(bins=10)
    m = measurer()
    for i in range(50):
        b.add(m(Frame(i, i / 10, image(100 + i % 7)), result(i % 4)))
    return b.build(model_sha256="0" * 64, model_name="synthetic", adapter="ssd",
                   analysis_width=64, source="synthetic", created=0.0)


class Recorder:
    """A FrameCheck that records what it is given."""

    def __init__(self, record: Callable[[FrameMeasurement], object]) -> None:
        self.record = record

    def check(self, measurement: FrameMeasurement) -> None:
        self.record(measurement)


class BlockingMeasurer(FrameMeasurer):
    """Measures normally but waits for a gate, so the queue fills up."""

    def __init__(self) -> None:
        super().__init__(ImageFeatureExtractor(64), OutputFeatureExtractor(0.5, 0.1))
        self.gate = threading.Event()

    def __call__(self, frame: Frame, res: InferenceResult | None) -> FrameMeasurement:
        self.gate.wait(10)
        return super().__call__(frame, res)


def checked_result(checked_on: list[str], finite: bool, detections: int = 1,
                   nbytes: int = 0) -> DeferredResult:
    """A result whose finite check records the thread it runs on and answers ``finite``;
    decoded, ``detections`` detections (none when not finite)."""
    def check() -> bool:
        checked_on.append(threading.current_thread().name)
        return finite

    return DeferredResult(lambda: result(detections).output, Timings(1.0, 10.0),  # type: ignore
                          check, lambda: result(0).output, nbytes=nbytes)  # type: ignore


class BusyMeasurer(BlockingMeasurer):
    """A BlockingMeasurer that tells when the worker has entered it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()

    def __call__(self, frame: Frame, res: InferenceResult | None) -> FrameMeasurement:
        self.entered.set()
        return super().__call__(frame, res)


def test_windows_by_time_count_every_frame(reference: ReferenceProfile) -> None:
    sink = ListSink()
    with Monitor(reference, measurer(), sink,
                 MonitorSettings(window_seconds=2.0, lossless=True)) as mon:
        for i in range(55):  # 10 fps: windows [0,2) [2,4) [4,6)
            mon.observe(Frame(i, 100.0 + i / 10, image(100)), result(2))
    starts = [s.start for s in sink.summaries]
    assert starts == [100.0, 102.0, 104.0]
    assert [s.frames.seen for s in sink.summaries] == [20, 20, 15]
    assert all(s.frames.monitored == s.frames.seen for s in sink.summaries)
    assert sink.summaries[0].numeric["det_count"].moments.mean == 2.0
    assert sink.summaries[0].categorical["classes"].as_dict() == {"1": 40}
    assert sink.summaries[0].latency["inference_ms"].count == 20


class FramesSeen:
    """A WindowJudge whose verdict is the window's frame count."""

    name = "seen"

    def judge(self, summary: WindowSummary) -> dict[str, Any]:
        return {"frames": summary.frames.seen}


class Fixed:
    """A ResourceProbe with fixed figures."""

    def sample(self) -> dict[str, Any]:
        return {"process_rss_mb": 42.0}


def test_the_judge_and_the_resources_reach_each_window_before_the_sink(
        reference: ReferenceProfile) -> None:
    judge: WindowJudge = FramesSeen()
    probe: ResourceProbe = Fixed()
    sink = ListSink()
    with Monitor(reference, measurer(), sink, MonitorSettings(window_seconds=1.0,
                 lossless=True), judge=judge, resources=probe) as mon:
        for i in range(25):
            mon.observe(Frame(i, i / 10, image(100)), result(1))
    assert [s.extra["seen"] for s in sink.summaries] == [
        {"frames": 10}, {"frames": 10}, {"frames": 5}]
    assert all(s.resources == {"process_rss_mb": 42.0} for s in sink.summaries)


def test_windows_by_frame_count(reference: ReferenceProfile) -> None:
    sink = ListSink()
    with Monitor(reference, measurer(), sink,
                 MonitorSettings(window_seconds=60, window_frames=7, lossless=True)) as mon:
        for i in range(20):
            mon.observe(Frame(i, float(i), image(100)), result(1))
    assert [s.frames.seen for s in sink.summaries] == [7, 7, 6]
    assert sink.summaries[0].end == sink.summaries[1].start == 7.0


def test_full_queue_skips_and_counts(reference: ReferenceProfile) -> None:
    slow = BlockingMeasurer()
    sink = ListSink()
    mon = Monitor(reference, slow, sink, MonitorSettings(window_seconds=1000, queue_size=4))
    queued = [mon.observe(Frame(i, float(i), image(100)), result(1)) for i in range(30)]
    assert queued.count(False) >= 30 - 4 - 1
    slow.gate.set()
    mon.close()
    [s] = sink.summaries
    assert s.frames.seen == 30
    assert s.frames.monitored + s.frames.dropped == 30
    assert s.frames.dropped == queued.count(False)


def test_every_nth_samples_and_counts(reference: ReferenceProfile) -> None:
    sink = ListSink()
    with Monitor(reference, measurer(), sink, MonitorSettings(every_nth=3, lossless=True)) as mon:
        for i in range(10):
            mon.observe(Frame(i, float(i), image(100)), result(0))
    [s] = sink.summaries
    assert (s.frames.seen, s.frames.monitored, s.frames.sampled_out) == (10, 4, 6)


def measured_times(reference: ReferenceProfile, times: list[float], max_fps: float) -> list[float]:
    """Stream times of the frames the monitor measured under a max_fps cap."""
    seen: list[float] = []
    sink = ListSink()
    settings = MonitorSettings(window_seconds=1e9, max_fps=max_fps, lossless=True)
    with Monitor(reference, measurer(), sink, settings,
                 check=Recorder(lambda m: seen.append(m.timestamp))) as mon:
        img, res = image(100), result(1)
        for i, t in enumerate(times):
            mon.observe(Frame(i, t, img), res)
    total = sink.summaries[0].frames
    assert (total.seen, total.monitored, total.sampled_out) == (
        len(times), len(seen), len(times) - len(seen))
    return seen


def test_max_fps_measures_one_frame_per_interval_of_stream_time(
        reference: ReferenceProfile) -> None:
    ten_fps = [i / 10 for i in range(40)]  # i / 10 is not exact: 0.4 + 0.4 != 0.8 exactly
    assert measured_times(reference, ten_fps, 2.5) == ten_fps[::4]
    assert measured_times(reference, ten_fps, 0.0) == ten_fps  # 0: no cap
    assert measured_times(reference, ten_fps, 100.0) == ten_fps  # cap above the frame rate


@pytest.mark.parametrize("fps", [3.0, 7.0, 30.0])
def test_max_fps_holds_the_average_rate_whatever_the_frame_rate(
        reference: ReferenceProfile, fps: float) -> None:
    times = [i / fps for i in range(int(fps * 20))]  # 20 s of stream
    got = measured_times(reference, times, 2.5)
    assert abs(len(got) - 50) <= 1
    assert min(np.diff(got)) >= 1 / fps - 1e-9 and max(np.diff(got)) <= 0.4 + 1 / fps


def test_max_fps_restarts_after_a_gap_or_when_time_goes_back(
        reference: ReferenceProfile) -> None:
    before = [i / 10 for i in range(10)]
    after_gap = [100.0 + i / 10 for i in range(10)]
    assert measured_times(reference, before + after_gap, 2.5) == (
        [0.0, 0.4, 0.8, after_gap[0], after_gap[4], after_gap[8]])
    restarted = before + before  # a looping file or a restarted source
    assert measured_times(reference, restarted, 2.5) == [0.0, 0.4, 0.8] * 2


def test_drain_waits_until_queued_frames_are_measured(reference: ReferenceProfile) -> None:
    measured: list[int] = []
    mon = Monitor(reference, measurer(), ListSink(),
                  check=Recorder(lambda m: measured.append(m.index)))
    try:
        for i in range(20):
            mon.observe(Frame(i, i / 10, image(100)), result(1))
        mon.drain()
        assert measured == list(range(20))
    finally:
        mon.close()


def test_drain_times_out_while_the_worker_is_busy(reference: ReferenceProfile) -> None:
    blocking = BlockingMeasurer()
    mon = Monitor(reference, blocking, ListSink())
    try:
        mon.observe(Frame(0, 0.0, image(100)), result(1))
        assert mon.drain(timeout=0.2) is False
        blocking.gate.set()
        assert mon.drain(timeout=10) is True
    finally:
        blocking.gate.set()
        mon.close()
    mon.observe(Frame(1, 0.1, image(100)), result(1))  # after close: nobody will measure it
    assert mon.drain() is False


class FailingSampler:
    def sample(self) -> dict[str, float]:
        raise OSError("psutil failed")


def test_failing_window_steps_are_logged_and_keep_the_worker(
        reference: ReferenceProfile) -> None:
    delivered: list[int] = []

    def flaky_sink(summary: WindowSummary) -> None:
        if len(delivered) == 0 and summary.frames.seen == 5:
            delivered.append(-1)
            raise OSError("disk full")
        delivered.append(summary.frames.seen)

    mon = Monitor(reference, measurer(), flaky_sink, MonitorSettings(window_frames=5),
                  resources=FailingSampler())
    for i in range(12):
        mon.observe(Frame(i, i / 10, image(100)), result(1))
    assert mon.drain(timeout=10) is True
    assert mon._worker.is_alive()
    mon.close()
    # resources failed each time and the windows still went out; the failed sink call
    # is the sink's to make durable (the outbox sink is)
    assert delivered == [-1, 5, 2]
    assert mon.errors == 3 + 1  # three resource samples and one sink failure, all logged


def test_decode_failures_and_nonfinite_outputs_are_counted(reference: ReferenceProfile) -> None:
    sink = ListSink()
    bad = InferenceResult(Detections.empty(), Timings(), nonfinite=True)
    with Monitor(reference, measurer(), sink, MonitorSettings(lossless=True)) as mon:
        mon.observe(Frame(0, 0.0, None), None)
        mon.observe(Frame(1, 0.1, image(100)), bad)
        mon.observe(Frame(2, 0.2, image(100)), None, inference_error=True)
    [s] = sink.summaries
    assert (s.frames.decode_errors, s.frames.nonfinite_outputs, s.frames.inference_errors) == (
        1, 1, 1)
    assert s.numeric["brightness"].hist.missing == 1


def test_live_window_closes_on_the_clock_without_frames(reference: ReferenceProfile) -> None:
    clock = ManualClock(1000.0)
    sink = ListSink()
    mon = Monitor(reference, measurer(), sink, MonitorSettings(window_seconds=5.0, live=True),
                  clock=clock)
    mon.observe(Frame(0, clock.now(), image(100)), result(1))
    clock.advance(6.0)  # the camera went silent
    deadline = time.monotonic() + 5
    while not sink.summaries and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sink.summaries) == 1 and sink.summaries[0].frames.seen == 1
    mon.observe(Frame(1, clock.now(), image(100)), result(1))
    mon.close()
    assert len(sink.summaries) == 2 and sink.summaries[1].start == 1006.0


def test_frames_buffered_when_the_clock_closes_their_window_are_counted_in_it(
        reference: ReferenceProfile) -> None:
    """Frames not sampled wait in observe's buffer (fewer than BUFFERED here) until a
    later frame counts them; when the camera goes silent instead, the clock closes their
    window and counts them in it, their finite checks first."""
    from edgewatch.agent.window.tally import BUFFERED

    clock = ManualClock(1000.0)
    sink = ListSink()
    mon = Monitor(reference, measurer(), sink,
                  MonitorSettings(window_seconds=5.0, live=True, every_nth=1000), clock=clock)
    nan = DeferredResult(lambda: result(0).output, Timings(1.0, 5.0), lambda: False)  # type: ignore
    for i in range(BUFFERED - 2):  # frame 0 sampled, the others buffered
        mon.observe(Frame(i, clock.now() + i / 100, image(100)), nan if i else result(1))
    clock.advance(6.0)  # the camera went silent
    deadline = time.monotonic() + 5
    while not sink.summaries and time.monotonic() < deadline:
        time.sleep(0.05)
    mon.close()
    [s] = sink.summaries
    assert (s.frames.seen, s.frames.monitored, s.frames.sampled_out,
            s.frames.nonfinite_outputs) == (BUFFERED - 2, 1, BUFFERED - 3, BUFFERED - 3)


def test_a_failing_sink_does_not_stop_the_monitor(reference: ReferenceProfile) -> None:
    calls = []

    def sink(summary: object) -> None:
        calls.append(summary)
        if len(calls) == 1:
            raise OSError("disk full")

    with Monitor(reference, measurer(), sink,
                 MonitorSettings(window_seconds=1.0, lossless=True)) as mon:
        for i in range(30):
            mon.observe(Frame(i, i / 10, image(100)), result(1))
    assert len(calls) == 3 and mon.errors == 1


def test_the_last_shorter_window_ends_where_its_frames_end(reference: ReferenceProfile) -> None:
    sink = ListSink()
    with Monitor(reference, measurer(), sink,
                 MonitorSettings(window_seconds=2.0, lossless=True)) as mon:
        for i in range(55):  # 10 fps from 100.0: the source ends at 105.4, mid-window
            mon.observe(Frame(i, 100.0 + i / 10, image(100)), result(1))
    ends = [s.end for s in sink.summaries]
    assert ends[:2] == [102.0, 104.0]  # full windows keep their length
    assert ends[2] == pytest.approx(105.5)  # last frame + one frame interval
    by_count = ListSink()
    with Monitor(reference, measurer(), by_count,
                 MonitorSettings(window_seconds=60, window_frames=7, lossless=True)) as mon:
        for i in range(20):
            mon.observe(Frame(i, float(i), image(100)), result(1))
    assert [(s.start, s.end) for s in by_count.summaries] == [(0, 7), (7, 14), (14, 20)]


def test_a_single_frame_window_ends_at_its_frame(reference: ReferenceProfile) -> None:
    sink = ListSink()
    with Monitor(reference, measurer(), sink, MonitorSettings(window_seconds=60.0)) as mon:
        mon.observe(Frame(0, 5.0, image(100)), result(1))
    [s] = sink.summaries
    assert (s.start, s.end) == (5.0, 5.0)


def test_deferred_outputs_are_decoded_on_the_monitor_thread(
        reference: ReferenceProfile) -> None:
    decoded_on: list[str] = []

    def decode() -> Detections:
        decoded_on.append(threading.current_thread().name)
        return result(2).output  # type: ignore[return-value]

    def broken() -> Detections:
        raise ValueError("adapter bug")

    sink = ListSink()
    with Monitor(reference, measurer(), sink, MonitorSettings(lossless=True)) as mon:
        mon.observe(Frame(0, 0.0, image(100)), DeferredResult(decode, Timings(1.0, 10.0)))
        mon.observe(Frame(1, 0.1, image(100)), DeferredResult(broken, Timings(1.0, 10.0)))
    assert decoded_on == ["edgewatch-monitor"]
    [s] = sink.summaries
    assert (s.frames.seen, s.frames.monitored) == (2, 1)  # the broken one is not measured
    assert s.numeric["det_count"].moments.mean == 2.0
    assert s.latency["postprocess_ms"].count == 1  # the decoding time filled in
    assert mon.errors == 1


def test_finite_checks_left_to_the_monitor_thread_count_every_frame(
        reference: ReferenceProfile) -> None:
    """Engine results carry their finite check unrun: the monitor thread runs it for every
    frame, sampled or not, and counts the failures in the frame's window before it closes;
    past MONITOR.MAX_UNCHECKED waiting, observe runs it itself (nothing goes uncounted)."""
    from edgewatch.agent.window.monitor import MAX_UNCHECKED

    checked_on: list[str] = []

    def deferred(finite: bool) -> DeferredResult:
        return checked_result(checked_on, finite, detections=2)

    sink = ListSink()
    with Monitor(reference, measurer(), sink,
                 MonitorSettings(window_seconds=2.0, every_nth=4, lossless=True)) as mon:
        for i in range(40):  # 10 fps: two windows; every 3rd frame's outputs hold NaN
            mon.observe(Frame(i, i / 10, image(100)), deferred(finite=i % 3 != 0))
    assert set(checked_on) == {"edgewatch-monitor"} and len(checked_on) == 40
    assert [(s.frames.seen, s.frames.monitored, s.frames.nonfinite_outputs)
            for s in sink.summaries] == [(20, 5, 7), (20, 5, 7)]
    nan_measured = [s.numeric["det_count"].moments.mean for s in sink.summaries]
    assert 0.0 < nan_measured[0] < 2.0  # the NaN frames measured with the empty output

    checked_on.clear()
    sink = ListSink()
    busy = BusyMeasurer()  # the worker, busy measuring frame 0 until the gate opens
    with Monitor(reference, busy, sink, MonitorSettings(every_nth=1000)) as mon:
        mon.observe(Frame(0, 0.0, image(100)), deferred(finite=False))
        assert busy.entered.wait(10)
        for i in range(1, MAX_UNCHECKED + 11):  # sampled out, the worker busy
            mon.observe(Frame(i, i / 10, image(100)), deferred(finite=False))
        assert not mon.drain(0.2)  # counts the frames observe buffered; the worker is busy
        assert checked_on.count("MainThread") == 10  # the ones beyond the cap, at once
        busy.gate.set()
    [s] = sink.summaries
    assert s.frames.nonfinite_outputs == MAX_UNCHECKED + 11 == len(checked_on)


def test_frames_with_large_outputs_are_held_within_a_byte_budget(
        reference: ReferenceProfile) -> None:
    """Frames keep their output arrays while they wait in observe's buffer and for their
    finite check: each of the two lists holds at most HELD_BYTES of them. Frames of 1 MiB
    are buffered four at a time, not 32 (a large model's outputs would pile up); four wait
    for the busy worker's check; the others are checked on the inference thread, at once.
    Every frame is counted either way."""
    from edgewatch.agent.window.tally import HELD_BYTES

    nbytes = HELD_BYTES // 4
    checked_on: list[str] = []

    def observe(mon: Monitor, i: int) -> None:
        mon.observe(Frame(i, i / 10, image(100)),
                    checked_result(checked_on, finite=False, nbytes=nbytes))

    sink = ListSink()
    busy = BusyMeasurer()  # the worker, busy measuring frame 0 until the gate opens
    with Monitor(reference, busy, sink, MonitorSettings(every_nth=1000)) as mon:
        observe(mon, 0)  # sampled: counted at once (the last frame's size: 1 MiB)
        assert busy.entered.wait(10)  # checked, then measured until the gate opens
        for i in range(1, 4):
            observe(mon, i)
        assert checked_on == ["edgewatch-monitor"]  # 1 to 3 buffered
        observe(mon, 4)  # the fourth buffered: counted; all four wait for the worker
        assert checked_on == ["edgewatch-monitor"]
        for i in range(5, 9):
            observe(mon, i)
        assert checked_on[1:] == ["MainThread"] * 4  # past the budget: checked at once
        busy.gate.set()
    [s] = sink.summaries
    assert s.frames.seen == s.frames.nonfinite_outputs == 9 == len(checked_on)
    assert checked_on.count("edgewatch-monitor") == 5  # frame 0's, and the four that waited


def test_frames_waiting_for_their_finite_check_wake_the_worker(
        reference: ReferenceProfile) -> None:
    """Between two sampled frames (a fast model under max_fps), the WAKE_UNCHECKED-th frame
    waiting for its finite check wakes the monitor thread, which runs the checks then,
    long before the inference thread would reach MAX_UNCHECKED and check frames itself."""
    from tests.support.waiting import wait_until

    from edgewatch.agent.window.tally import WAKE_UNCHECKED

    checked_on: list[str] = []

    def observe(mon: Monitor, i: int) -> None:
        mon.observe(Frame(i, i / 100, image(100)), checked_result(checked_on, finite=True))

    sink = ListSink()
    with Monitor(reference, measurer(), sink, MonitorSettings(every_nth=10_000)) as mon:
        observe(mon, 0)  # the only sampled frame
        assert mon.drain(10)  # measured: the worker waits for the next item
        for i in range(1, WAKE_UNCHECKED):
            observe(mon, i)
        time.sleep(0.3)
        assert checked_on == ["edgewatch-monitor"]  # frame 0's, when it was measured
        observe(mon, WAKE_UNCHECKED)
        wait_until(lambda: len(checked_on) == WAKE_UNCHECKED + 1, 10,
                   "the worker to run the waiting checks")
    assert checked_on == ["edgewatch-monitor"] * (WAKE_UNCHECKED + 1)
    [s] = sink.summaries
    assert (s.frames.seen, s.frames.monitored) == (WAKE_UNCHECKED + 1, 1)


def test_a_last_window_its_frames_fill_keeps_its_full_length(
        reference: ReferenceProfile) -> None:
    sink = ListSink()
    start = 1767225600.0  # epoch timestamps: start + i / fps is not exact
    with Monitor(reference, measurer(), sink,
                 MonitorSettings(window_seconds=2.0, lossless=True)) as mon:
        for i in range(40):
            mon.observe(Frame(i, start + i / 10, image(100)), result(1))
    assert [s.end for s in sink.summaries] == [start + 2.0, start + 4.0]


def test_the_monitor_thread_cpu_time_is_counted_while_it_runs(
        reference: ReferenceProfile) -> None:
    mon = Monitor(reference, measurer(), ListSink(), MonitorSettings(lossless=True))
    before = mon.cpu_seconds()
    for i in range(20):
        mon.observe(Frame(i, i / 10, image(100)), result(1))
    assert mon.drain(timeout=10)
    assert mon.cpu_seconds() > before >= 0.0
    mon.close()
    assert math.isnan(mon.cpu_seconds())
