"""AppMonitor / MonitoredSession: monitoring inside an application's own inference loop."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import paho.mqtt.client as mqtt
import pytest

from edgewatch.agent.app import make_measurer
from edgewatch.agent.delivery.sinks import ListSink
from edgewatch.agent.embed import AppMonitor, MonitoredSession
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import Frame, Timings
from edgewatch.agent.window.reference import ReferenceBuilder, ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.clock import ManualClock
from edgewatch.config.agent import AgentConfig, parse_config
from edgewatch.errors import AdapterMismatch
from support.broker import MosquittoBroker
from support.onnx_models import classifier_model, constant_model, statistics_model, yolo_v8_output

SIZE = 16


def agent_config(path: Path, adapter: str, size: int = SIZE, **pre: Any) -> AgentConfig:
    return parse_config({
        "model": {
            "path": str(path), "adapter": adapter,
            "preprocess": {"width": size, "height": size, "layout": "NCHW", "dtype": "float32",
                           "color": "BGR", "scale": 1.0 / 255, **pre},
        },
        "features": {"analysis_width": 32, "queue_size": 1000, "max_fps": 0.0},
        "window": {"seconds": 3600.0},
        "resources": {"enabled": False},
        "reference": {"bins": 5},
    })


def frames(n: int, width: int = 40, height: int = 30, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image[..., rng.integers(0, 3)] //= 4  # vary the predicted class
        out.append(image)
    return out


def build_reference(cfg: AgentConfig, images: list[np.ndarray]) -> ReferenceProfile:
    """What ``edgewatch profile build`` does, over in-memory frames."""
    engine = InferenceEngine(cfg.model)
    measurer = make_measurer(cfg)
    builder = ReferenceBuilder(cfg.reference.bins)
    for i, image in enumerate(images):
        builder.add(measurer(Frame(i, i * 0.1, image), engine.infer(image)))
    return builder.build(
        model_sha256=engine.model_sha256, model_name=engine.model_name,
        adapter=cfg.model.adapter, analysis_width=cfg.features.analysis_width, source="synthetic",
    )


@pytest.fixture
def classifier(tmp_path: Path) -> tuple[AgentConfig, ReferenceProfile]:
    weights = np.random.default_rng(1).normal(size=(3, 5)) * 5.0
    cfg = agent_config(classifier_model(tmp_path / "clf.onnx", weights, size=SIZE),
                       "classification")
    return cfg, build_reference(cfg, frames(12, seed=10))


def run_wrapped(cfg: AgentConfig, reference: ReferenceProfile, engine: InferenceEngine,
                images: Sequence[np.ndarray]) -> ListSink:
    """Run images through a wrapped session (the library path) and return the sink."""
    sink = ListSink()
    with AppMonitor(cfg, reference, sink, clock=ManualClock(), live=False) as monitor:
        session = monitor.wrap(engine.session)
        for image in images:
            session.run(None, {"images": engine.preprocess(image)[0]}, frame=image)
    return sink


def only_summary(sink: ListSink) -> WindowSummary:
    assert len(sink.summaries) == 1, [s.frames for s in sink.summaries]
    return sink.summaries[0]


def test_wrapped_session_returns_exactly_the_bare_outputs(
        classifier: tuple[AgentConfig, ReferenceProfile]) -> None:
    cfg, reference = classifier
    engine = InferenceEngine(cfg.model)
    bare = ort.InferenceSession(cfg.model.path, providers=["CPUExecutionProvider"])
    sink = ListSink()
    monitor = AppMonitor(cfg, reference, sink, clock=ManualClock(), live=False)
    wrapped = monitor.wrap(ort.InferenceSession(cfg.model.path,
                                                providers=["CPUExecutionProvider"]))
    assert isinstance(wrapped, MonitoredSession)
    assert [i.name for i in wrapped.get_inputs()] == ["images"]  # passes through
    images = frames(7, seed=20)
    for image in images:
        tensor, _ = engine.preprocess(image)
        feed = {"images": tensor}
        expected = bare.run(None, feed)
        got = wrapped.run(None, feed, frame=image)
        assert isinstance(got, list) and len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert g.dtype == e.dtype and np.array_equal(g, e)
    assert sink.summaries == []  # nothing before the window closes
    monitor.close()
    summary = only_summary(sink)
    assert summary.reference_id == reference.id
    assert summary.frames.seen == len(images)
    assert summary.frames.monitored == len(images)
    assert summary.frames.dropped == 0 and summary.frames.nonfinite_outputs == 0
    assert summary.frames.decode_errors == 0
    assert summary.numeric["top1_prob"].moments.count == len(images)
    assert summary.numeric["brightness"].moments.count == len(images)  # frame= given
    assert summary.categorical["classes"].total == len(images)
    assert summary.latency["inference_ms"].count == len(images)


def test_under_the_default_rate_cap_only_sampled_frames_are_decoded(
        classifier: tuple[AgentConfig, ReferenceProfile]) -> None:
    cfg, reference = classifier
    cfg = dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, max_fps=2.5))
    engine = InferenceEngine(cfg.model)
    clock, sink = ManualClock(), ListSink()
    with AppMonitor(cfg, reference, sink, clock=clock, live=False) as monitor:
        decoded: list[np.ndarray] = []
        decode = monitor.adapter.decode

        def counting(outputs: Any, geometry: Any) -> Any:
            decoded.append(outputs[0].copy())
            return decode(outputs, geometry)

        monitor.adapter.decode = counting  # type: ignore[method-assign]
        session = monitor.wrap(engine.session)
        for image in frames(20, seed=30):  # 2 s at 10 fps
            out = session.run(None, {"images": engine.preprocess(image)[0]}, frame=image)
            out[0][:] = -1.0  # the application reuses its arrays: too late to matter
            clock.advance(0.1)
    summary = only_summary(sink)
    assert (summary.frames.seen, summary.frames.monitored, summary.frames.sampled_out) == (
        20, 5, 15)
    assert len(decoded) == 5 and not any((d == -1.0).all() for d in decoded)
    assert summary.numeric["top1_prob"].moments.count == 5


def test_wrapped_session_measures_what_the_engine_measures(
        classifier: tuple[AgentConfig, ReferenceProfile]) -> None:
    """The same frames through the daemon's path and through wrap() give the same features."""
    cfg, reference = classifier
    engine = InferenceEngine(cfg.model)
    images = frames(6, seed=30)
    measurer = make_measurer(cfg)
    expected = [measurer(Frame(i, 0.0, im), engine.infer(im)) for i, im in enumerate(images)]
    sink = run_wrapped(cfg, reference, engine, images)
    summary = only_summary(sink)
    for name in ("top1_prob", "margin", "prob_entropy"):
        values = np.array([m.numeric[name] for m in expected])
        moments = summary.numeric[name].moments
        assert moments.count == len(images)
        assert moments.mean == pytest.approx(values.mean(), abs=1e-6)
    classes = [label for m in expected for label in m.labels["classes"]]
    assert summary.categorical["classes"].as_dict() == {
        c: classes.count(c) for c in set(classes)
    }


def test_partial_output_runs_are_passed_through_unmonitored(tmp_path: Path) -> None:
    cfg = agent_config(statistics_model(tmp_path / "stats.onnx", size=SIZE), "raw")
    reference = build_reference(cfg, frames(4, seed=5))
    sink = ListSink()
    monitor = AppMonitor(cfg, reference, sink, clock=ManualClock(), live=False)
    bare = ort.InferenceSession(cfg.model.path, providers=["CPUExecutionProvider"])
    wrapped = monitor.wrap(bare)
    feed = {"images": np.random.default_rng(6).random((1, 3, SIZE, SIZE), np.float32)}
    for names in (["mean"], ["doubled", "mean"], ["mean", "doubled"], None):
        got, expected = wrapped.run(names, feed), bare.run(names, feed)
        assert len(got) == len(expected)
        assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))
    monitor.close()
    # Only the runs returning every output, in the session's order, are monitored.
    assert only_summary(sink).frames.seen == 2


def test_wrap_checks_the_session_against_the_adapter(
        tmp_path: Path, classifier: tuple[AgentConfig, ReferenceProfile]) -> None:
    cfg, reference = classifier
    two_outputs = ort.InferenceSession(str(statistics_model(tmp_path / "s.onnx", size=SIZE)),
                                       providers=["CPUExecutionProvider"])
    monitor = AppMonitor(cfg, reference, ListSink(), clock=ManualClock(), live=False)
    try:
        with pytest.raises(AdapterMismatch, match="expected exactly one output"):
            monitor.wrap(two_outputs)
    finally:
        monitor.close()


def test_runs_without_frame_are_not_decode_errors(
        classifier: tuple[AgentConfig, ReferenceProfile]) -> None:
    cfg, reference = classifier
    sink = ListSink()
    with AppMonitor(cfg, reference, sink, clock=ManualClock(), live=False) as monitor:
        session = monitor.wrap(ort.InferenceSession(cfg.model.path,
                                                    providers=["CPUExecutionProvider"]))
        session.run(None, {"images": np.zeros((1, 3, SIZE, SIZE), np.float32)})
    counts = only_summary(sink).frames
    assert counts.seen == 1 and counts.monitored == 1
    assert counts.decode_errors == 0
    assert "decode_error" not in only_summary(sink).quality


def test_observe_records_outputs_and_timings(
        classifier: tuple[AgentConfig, ReferenceProfile]) -> None:
    cfg, reference = classifier
    engine = InferenceEngine(cfg.model)
    clock = ManualClock()
    sink = ListSink()
    images = frames(5, seed=40)
    with AppMonitor(cfg, reference, sink, clock=clock, live=False) as monitor:
        for image in images:
            outputs = engine.run(engine.preprocess(image)[0])
            monitor.observe(image, outputs, Timings(1.0, 2.0, 0.5))
            clock.advance(0.1)
        nan = np.full((1, 5), np.nan, np.float32)
        monitor.observe(images[0], [nan], Timings(1.0, 2.0, 0.5))
    summary = only_summary(sink)
    assert summary.frames.seen == len(images) + 1
    assert summary.frames.monitored == len(images) + 1
    assert summary.frames.nonfinite_outputs == 1
    assert summary.numeric["top1_prob"].moments.count == len(images)
    assert summary.latency["total_ms"].count == len(images) + 1
    assert summary.latency["inference_ms"].quantile(0.5) == pytest.approx(2.0, rel=0.05)
    assert summary.latency["total_ms"].quantile(0.5) == pytest.approx(3.5, rel=0.05)


def test_windows_close_by_frame_count(classifier: tuple[AgentConfig, ReferenceProfile]) -> None:
    cfg, reference = classifier
    cfg = parse_config({**dataclasses.asdict(cfg), "window": {"seconds": 3600.0, "frames": 4}})
    engine = InferenceEngine(cfg.model)
    sink = run_wrapped(cfg, reference, engine, frames(10, seed=50))
    assert [s.frames.seen for s in sink.summaries] == [4, 4, 2]


def test_raw_features_use_the_session_output_names(tmp_path: Path) -> None:
    """The reference (built by the engine) and the wrapped session name raw features alike."""
    path = statistics_model(tmp_path / "stats.onnx", size=SIZE)
    cfg = agent_config(path, "raw")
    reference = build_reference(cfg, frames(8, seed=60))
    assert "raw.mean.mean" in reference.numeric
    engine = InferenceEngine(cfg.model)
    images = frames(3, seed=61)
    sink = run_wrapped(cfg, reference, engine, images)
    summary = only_summary(sink)
    assert summary.numeric["raw.mean.mean"].moments.count == len(images)
    assert summary.numeric["raw.doubled.max"].moments.count == len(images)


def test_detector_boxes_map_through_the_configured_letterbox(tmp_path: Path) -> None:
    """A wrapped YOLO session given the frame measures boxes as the daemon does."""
    out = yolo_v8_output([(32.0, 32.0, 16.0, 8.0)], [[0.9, 0.0]], anchors=8)
    path = constant_model(tmp_path / "yolo.onnx", out, input_shape=(1, 3, 64, 64))
    cfg = agent_config(path, "yolo", size=64, resize="letterbox")
    images = frames(4, width=128, height=64, seed=70)
    reference = build_reference(cfg, images)
    engine = InferenceEngine(cfg.model)
    measurer = make_measurer(cfg)
    expected = measurer(Frame(0, 0.0, images[0]), engine.infer(images[0]))
    sink = run_wrapped(cfg, reference, engine, images)
    summary = only_summary(sink)
    area = summary.numeric["box_area"].moments
    assert area.count == len(images)
    # 16x8 input pixels at scale 0.5 in a 128x64 frame: 32x16 frame pixels.
    assert float(expected.numeric["box_area"][0]) == pytest.approx(32 * 16 / (128 * 64))
    assert area.mean == pytest.approx(32 * 16 / (128 * 64), abs=1e-6)
    assert summary.numeric["box_aspect"].moments.mean == pytest.approx(1.0, abs=1e-6)


def test_without_mqtt_the_library_path_only_feeds_the_sink(
        tmp_path: Path, classifier: tuple[AgentConfig, ReferenceProfile],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No outbox, no publisher, and no alert rules (their alerts would have nowhere to go):
    nothing is written besides what the application's sink does."""
    cfg, reference = classifier
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # where a default alert state file would go
    monitor = AppMonitor(cfg, reference, ListSink(), clock=ManualClock(), live=False)
    outputs = monitor.agent.outputs
    assert (outputs.delivery, outputs.alerting, outputs.lines) == (None, None, None)
    assert monitor.close() is True
    assert list((tmp_path / "cwd").iterdir()) == []


def test_with_mqtt_enabled_windows_and_alerts_are_published(
        tmp_path: Path, broker: MosquittoBroker,
        classifier: tuple[AgentConfig, ReferenceProfile]) -> None:
    """The configuration enables delivery and alerts: AppMonitor gets the outbox, the
    publisher and the alert rules from the same composition root as ``edgewatch run``."""
    cfg, reference = classifier
    always = {"name": "slow", "metric": "latency.p95", "op": ">=", "threshold": 0.0}
    cfg = parse_config({
        **dataclasses.asdict(cfg),
        "device": {"id": "app-1", "fleet": "lab"},
        "mqtt": {"enabled": True, "port": broker.port},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "alerts": {"state_path": str(tmp_path / "alerts.db"), "rules": [always]},
    })
    received: list[str] = []
    lock = threading.Lock()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with lock:
            received.append(msg.topic)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="app-test",
                         protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe("edgewatch/v1/#", qos=1)
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        sink = ListSink()
        engine = InferenceEngine(cfg.model)
        monitor = AppMonitor(cfg, reference, sink, clock=ManualClock(), live=False)
        outputs = monitor.agent.outputs
        assert outputs.delivery is not None and outputs.delivery.publisher is not None
        assert outputs.alerting is not None
        session = monitor.wrap(engine.session)
        for image in frames(4, seed=80):
            session.run(None, {"images": engine.preprocess(image)[0]}, frame=image)
        assert monitor.close(drain_timeout=10) is True
        assert len(sink.summaries) == 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                leaves = {topic.rsplit("/", 1)[-1] for topic in received}
            if {"summary", "alert"} <= leaves:
                break
            time.sleep(0.05)
        assert {"summary", "alert", "status"} <= leaves
        assert all(topic.startswith("edgewatch/v1/lab/app-1/") for topic in received)
    finally:
        client.loop_stop()
        client.disconnect()
