"""Faults that mean no usable signal: failed inference is a quality fault the default rule
alerts on, and the monitor reports no signal (and its end) to ``on_signal`` before the
window closes, including a live source that delivers no frames."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.rule_metrics import observe
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.app import Agent, make_measurer
from edgewatch.agent.delivery.sinks import ListSink
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.inference.failures import infer_safely
from edgewatch.agent.measure.checks import FrameChecks
from edgewatch.agent.ratelimit import RepeatLimiter
from edgewatch.agent.records import Frame, SignalChange
from edgewatch.agent.source import open_source
from edgewatch.agent.window.monitor import Monitor, MonitorSettings
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.clock import ManualClock
from edgewatch.config.agent import AgentConfig, parse_config
from edgewatch.contracts import Alert
from support.onnx_models import always_failing_model
from support.paths import ssd_config_dict


def failing_config(assets: Path, tmp_path: Path) -> AgentConfig:
    d = ssd_config_dict(assets)
    d["model"] = {"path": str(always_failing_model(tmp_path / "fails.onnx")), "adapter": "raw",
                  "preprocess": {"width": 64, "height": 64, "layout": "NCHW",
                                 "dtype": "float32", "color": "RGB", "scale": 1 / 255}}
    return parse_config(d)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_model_failing_on_every_frame_is_a_quality_fault_that_alerts(
        assets: Path, vtest: Path, tmp_path: Path, ssd_reference: ReferenceProfile) -> None:
    cfg = failing_config(assets, tmp_path)
    engine = InferenceEngine(cfg.model)
    sink = ListSink()  # (a reference cannot be built with this model: the SSD one will do)
    agent = Agent(cfg, engine, ssd_reference, sink, live=False, lossless=True)
    agent.run(open_source(str(vtest), first=30, last=129))  # 10 s at 10 fps: one window
    [s] = sink.summaries
    assert s.frames.inference_errors == 100 and s.frames.monitored == 25  # max_fps 2.5
    assert s.quality["inference_error"] == s.frames.monitored  # every measured frame
    line = s.to_dict()
    assert observe("quality", line)["inference_error"] == 1.0
    alerts: list[Alert] = []
    AlertEngine(cfg.alerts, AlertStore(":memory:"), alerts.append).evaluate(line)
    fired = {(a.rule, a.subject, a.severity) for a in alerts if a.state == "firing"}
    assert ("quality", "inference_error", "critical") in fired


def test_failed_inference_is_reported_as_no_signal_before_the_window_closes(
        assets: Path, vtest_frames: list[np.ndarray], tmp_path: Path,
        ssd_reference: ReferenceProfile, ssd_config: AgentConfig) -> None:
    cfg = failing_config(assets, tmp_path)
    engine = InferenceEngine(cfg.model)
    changes: list[SignalChange] = []
    windows = ListSink()
    settings = MonitorSettings(window_seconds=60.0, max_fps=2.5, lossless=True)
    quiet = RepeatLimiter("{count} {seconds} {last}")
    with Monitor(ssd_reference, make_measurer(ssd_config), windows, settings,
                 check=FrameChecks(ssd_config.quality, ssd_reference),
                 on_signal=changes.append) as mon:
        for i, img in enumerate(vtest_frames[:50]):  # 5 s of footage at 10 fps
            result, failed = infer_safely(engine.infer_deferred, img, quiet)
            mon.observe(Frame(i, 1000.0 + i / 10, img), result, inference_error=failed)
        assert mon.drain(10)
        assert windows.summaries == []  # the window is still open
        assert [(c.lost, c.fault, c.since) for c in changes] == [
            (True, "inference_error", 1000.0)]
        assert 3.0 <= changes[0].at - 1000.0 <= 3.4


def test_a_live_source_without_frames_is_reported_and_its_return(
        ssd_config: AgentConfig, ssd_reference: ReferenceProfile,
        vtest_frames: list[np.ndarray]) -> None:
    clock = ManualClock(5000.0)
    changes: list[SignalChange] = []
    settings = MonitorSettings(window_seconds=60.0, live=True)
    mon = Monitor(ssd_reference, make_measurer(ssd_config), ListSink(), settings,
                  check=FrameChecks(ssd_config.quality, ssd_reference), clock=clock,
                  on_signal=changes.append)
    try:
        mon.observe(Frame(0, clock.now(), vtest_frames[0]), None)
        clock.advance(2.0)
        time.sleep(0.7)  # a tick or more: not yet
        assert changes == []
        clock.advance(1.5)  # the reconnecting source has delivered nothing for 3.5 s
        assert wait_for(lambda: len(changes) == 1)
        assert changes[0] == SignalChange(True, "no_frames", 5000.0, 5003.5)
        clock.advance(1.0)
        mon.observe(Frame(1, clock.now(), vtest_frames[1]), None)
        assert wait_for(lambda: len(changes) == 2)
        assert changes[1] == SignalChange(False, "no_frames", 5000.0, 5004.5)
    finally:
        mon.close()


def test_a_failing_signal_receiver_is_logged_and_counted(
        ssd_config: AgentConfig, ssd_reference: ReferenceProfile,
        vtest_frames: list[np.ndarray]) -> None:
    def broken(change: SignalChange) -> None:
        raise RuntimeError("alert engine down")

    windows = ListSink()
    cfg = dataclasses.replace(ssd_config.quality, no_signal_seconds=1.0)
    black = np.zeros_like(vtest_frames[0])
    with Monitor(ssd_reference, make_measurer(ssd_config), windows,
                 MonitorSettings(lossless=True), check=FrameChecks(cfg, ssd_reference),
                 on_signal=broken) as mon:
        for i in range(20):
            mon.observe(Frame(i, i / 5, black if i < 10 else vtest_frames[i]), None)
    assert mon.errors == 2  # lost and back, both failed to be delivered
    [s] = windows.summaries
    assert s.quality["black"] == 10  # the window still counts the faults
