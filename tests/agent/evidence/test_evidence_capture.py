"""Evidence capture on real footage: a drift alert keeps its frames, caps and dedup hold."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgewatch.agent.app import build_agent, make_measurer, offline_config
from edgewatch.agent.delivery.sinks import ListSink
from edgewatch.agent.evidence.capture import EvidenceCapture, Identity, prelabels
from edgewatch.agent.evidence.ring import FrameRing, Shot, decode_jpeg, read_only
from edgewatch.agent.evidence.store import EvidenceStore
from edgewatch.agent.evidence.triggers import Caps, near_duplicate
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import Frame
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.clock import ManualClock
from edgewatch.config.agent import AgentConfig
from edgewatch.config.maintenance import EvidenceConfig
from edgewatch.contracts import Alert
from edgewatch.contracts.alert import Span

FPS = 10.0


def _evidence_config(cfg: AgentConfig, path: Path, **keys: object) -> AgentConfig:
    ev = dataclasses.replace(cfg.evidence, enabled=True, path=str(path),
                             near_threshold_per_hour=0.0, baseline_per_hour=0.0, **keys)
    window = dataclasses.replace(cfg.window, seconds=10.0)
    return offline_config(dataclasses.replace(cfg, evidence=ev, window=window))


@pytest.mark.slow
def test_drift_alert_keeps_pre_and_post_trigger_frames(
        tmp_path: Path, ssd_config: AgentConfig, ssd_engine: InferenceEngine,
        ssd_reference: ReferenceProfile, vtest_all_frames: list[np.ndarray]) -> None:
    """vtest frames 200-519, darkened from frame 300, against a reference of frames 0-199."""
    cfg = _evidence_config(ssd_config, tmp_path / "evidence")
    sink = ListSink()
    agent = build_agent(cfg, ssd_reference, publish=False, live=False, engine=ssd_engine,
                        sink=sink, lossless=True)
    for i in range(200, 520):
        image = vtest_all_frames[i]
        if i >= 300:
            image = cv2.convertScaleAbs(image, alpha=0.35)
        agent.process(Frame(i, i / FPS, image))
    agent.close()
    assert any((s.extra.get("drift") or {}).get("severity") == "drift" for s in sink.summaries)
    capture = agent.outputs.evidence
    assert capture is not None
    store = EvidenceStore(cfg.evidence.path, 1 << 30)
    rows = store.frames(kind="alert")
    sidecars = [store.sidecar(r["id"]) for r in rows]
    alert_triggers = [t for s in sidecars for t in s["triggers"] if t["kind"] == "alert"]
    drift = [t for t in alert_triggers if t["rule"] == "drift"]
    assert drift and {t["rule"] for t in alert_triggers} <= {"drift", "quality", "anomalies"}
    alert_id = drift[0]["alert_id"]
    assert {r["id"] for r in store.frames(alert_id=alert_id)} <= {r["id"] for r in rows}
    phases = [t["phase"] for t in drift if t["alert_id"] == alert_id]
    # five pre-trigger frames; of the five after it, near-duplicates (vtest pauses) are not kept
    assert phases.count("pre") == 5 and phases.count("post") >= 1, capture.totals
    fired = drift[0]["alert_window"]
    pre = [s for s in sidecars
           if any(t.get("phase") == "pre" and t["alert_id"] == alert_id for t in s["triggers"])]
    assert all(s["time"] < fired["end"] for s in pre)  # frames from before the alert
    assert all(s["frame_index"] >= 300 for s in pre)  # ... of the darkened footage
    post = [s for s in sidecars
            if any(t.get("phase") == "post" and t["alert_id"] == alert_id for t in s["triggers"])]
    assert min(s["time"] for s in post) > max(s["time"] for s in pre)
    first = sidecars[0]
    assert first["model_sha256"] == ssd_engine.model_sha256
    assert first["reference_id"] == ssd_reference.id
    assert first["device"] == cfg.device.id and first["redacted"] is False
    assert first["features"]["brightness"] < 60 and "box_area" not in first["features"]
    labels = first["prelabels"]
    assert labels["kind"] == "detections" and labels["names"]
    assert set(labels["names"]) <= {"person", "handbag", "backpack", "umbrella", "car"}
    assert all(0 <= v <= 1 for box in labels["boxes"] for v in box)
    assert all(s >= 0.4 for s in labels["scores"])
    image = cv2.imread(str(Path(cfg.evidence.path) / rows[0]["image"]))
    assert image.shape == (576, 768, 3) and image.mean() < 60
    assert capture.totals["captured"] == len(store.frames()) and capture.totals["errors"] == 0
    store.close()


def _measured(cfg: AgentConfig, engine: InferenceEngine,
              frames: list[np.ndarray]) -> list[tuple[Frame, object, object]]:
    measurer = make_measurer(cfg)
    out = []
    for i, image in enumerate(frames):
        frame = Frame(i, i / FPS, image)
        result = engine.infer(image)
        out.append((frame, result, measurer(frame, result)))
    return out


def _alert(n: int, start: float) -> Alert:
    return Alert(id=f"alert{n}", rule="drift", state="firing", severity="critical",
                 window=Span(start, start + 60), since=start, updated=start,
                 metric="drift.severity")


def test_caps_and_budget_hold_through_an_hour_of_alert_storms(
        tmp_path: Path, ssd_config: AgentConfig, ssd_engine: InferenceEngine,
        vtest_frames: list[np.ndarray]) -> None:
    measured = _measured(ssd_config, ssd_engine, vtest_frames[::4][:30])
    clock = ManualClock()
    ev = EvidenceConfig(enabled=True, max_per_hour=40, max_per_day=100, pre_frames=5,
                        post_frames=5, max_mb=1.0, baseline_per_hour=0.0,
                        near_threshold_per_hour=0.0, queue_size=1000)
    store = EvidenceStore(tmp_path / "ev", int(ev.max_mb * 2**20))
    capture = EvidenceCapture(ev, store, Identity("cam", "sha", "ref"), clock=clock)
    written_at: list[float] = []
    k = 0
    for minute in range(3 * 60):  # three hours, an alert every minute
        clock.advance(60.0)
        for _ in range(6):
            frame, result, m = measured[k % len(measured)]
            k += 1
            capture.observe(frame, result, m, (0.0, 60.0))  # type: ignore[arg-type]
        capture.alert(_alert(minute, clock.now()))
        assert capture.drain()
        before = len(written_at)
        written_at += [clock.now()] * (capture.totals["captured"] - before)
        assert store.total_bytes <= 2**20
    times = np.array(written_at)
    for t in times:  # no sliding hour holds more than the cap
        assert np.count_nonzero((times > t - 3600) & (times <= t)) <= 40
    assert len(times) <= 100  # the day cap
    totals = capture.totals
    assert totals["captured"] == len(times) and totals["capped"] > 0
    assert totals["evicted"] > 0 and totals["dropped"] == 0
    on_disk = sum(p.stat().st_size for p in (tmp_path / "ev" / "frames").rglob("*.*"))
    assert on_disk <= 2**20
    capture.close()


def test_near_duplicates_are_skipped(tmp_path: Path, ssd_config: AgentConfig,
                                     ssd_engine: InferenceEngine,
                                     vtest_frames: list[np.ndarray]) -> None:
    (frame, result, m), = _measured(ssd_config, ssd_engine, vtest_frames[:1])
    other = _measured(ssd_config, ssd_engine, vtest_frames[60:61])[0]
    assert m.thumbnail is not None and near_duplicate(m.thumbnail, m.thumbnail.copy(), 0.5)
    clock = ManualClock()
    ev = EvidenceConfig(enabled=True, pre_frames=5, post_frames=0, baseline_per_hour=0.0,
                        near_threshold_per_hour=0.0)
    store = EvidenceStore(tmp_path / "ev", 1 << 30)
    capture = EvidenceCapture(ev, store, Identity("cam", "sha", "ref"), clock=clock)
    for i in range(4):  # a frozen picture: four copies of one frame, then a different one
        capture.observe(Frame(i, i / FPS, frame.image.copy()), result, m,  # type: ignore[union-attr,arg-type]
                        (0.0, 10.0))
    capture.observe(Frame(60, 6.0, other[0].image), other[1], other[2],  # type: ignore[arg-type]
                    (0.0, 10.0))
    capture.alert(_alert(0, clock.now()))
    assert capture.drain()
    assert capture.totals["captured"] == 2 and capture.totals["duplicates"] == 3
    assert [r["frame_index"] for r in store.frames()] == [0, 60]
    capture.close()


def _shot(i: int, image: np.ndarray | None, jpeg: bytes | None = None) -> Shot:
    h, w = (image.shape[:2] if image is not None else (576, 768))
    return Shot(i, i / FPS, None if image is None else read_only(image), jpeg, (w, h),
                (0.0, 10.0), None, {}, None)


def test_ring_keeps_raw_frames_within_its_budget(vtest_frames: list[np.ndarray]) -> None:
    frame_bytes = vtest_frames[0].nbytes  # 768x576 BGR: 1.3 MiB
    ring = FrameRing(3, 3 * frame_bytes)
    assert len(ring) == 0 and ring.nbytes == 0 and ring.fits_raw(frame_bytes)
    for i, image in enumerate(vtest_frames[:5]):
        assert ring.push(_shot(i, image))
        assert len(ring) <= 3 and ring.nbytes <= ring.budget
    shots = list(ring)
    assert [s.frame_index for s in shots] == [2, 3, 4]
    for s, image in zip(shots, vtest_frames[2:5], strict=True):  # the source's arrays, no copy
        assert s.image is not None and np.shares_memory(s.image, image)
        assert not s.image.flags.writeable and s.jpeg is None
    with pytest.raises(ValueError):  # nobody writes into a frame through the ring
        shots[0].image[0, 0] = 0  # type: ignore[index]
    # a budget that does not hold ``size`` raw frames: the capture encodes them instead,
    # and the ring still never holds more than its budget, the oldest dropped first
    small = FrameRing(5, 2 * frame_bytes + 10)
    assert not small.fits_raw(frame_bytes)
    for i, image in enumerate(vtest_frames[:4]):
        small.push(_shot(i, image))
        assert small.nbytes <= small.budget
    assert [s.frame_index for s in small] == [2, 3]
    assert not small.push(_shot(9, np.zeros((2000, 2000, 3), np.uint8)))  # over the budget
    assert [s.frame_index for s in small] == [2, 3]
    assert small.push(_shot(10, None, b"x" * 1000))  # a JPEG: frame 2 makes room for it
    assert [s.frame_index for s in small] == [3, 10] and small.nbytes == frame_bytes + 1000
    written = next(iter(small))
    written.release()  # a written frame's pixels are dropped
    assert written.nbytes == 0 and small.nbytes == 1000
    assert FrameRing(0, 1 << 30).push(_shot(0, vtest_frames[0])) is False


def test_only_written_frames_are_encoded(tmp_path: Path, ssd_config: AgentConfig,
                                         ssd_engine: InferenceEngine,
                                         vtest_frames: list[np.ndarray]) -> None:
    """30 monitored frames, an alert after 20: the 5 pre-trigger and 2 post-trigger frames
    are encoded (the capture's own count of cv2.imencode calls), the other 23 never."""
    measured = _measured(ssd_config, ssd_engine, vtest_frames[::4][:30])
    before = [f.image.copy() for f, _, _ in measured]  # type: ignore[union-attr]
    ev = EvidenceConfig(enabled=True, pre_frames=5, post_frames=2, baseline_per_hour=0.0,
                        near_threshold_per_hour=0.0, dedup_max_diff=0.0, queue_size=1000)
    store = EvidenceStore(tmp_path / "ev", 1 << 30)
    capture = EvidenceCapture(ev, store, Identity("cam", "sha", "ref"), clock=ManualClock())
    budget = int(ev.ring_mb * 2**20)
    assert capture.ring.budget == budget == 32 * 2**20
    for i, (frame, result, m) in enumerate(measured):
        capture.observe(frame, result, m, (0.0, 10.0))  # type: ignore[arg-type]
        if i == 19:
            capture.alert(_alert(0, 0.0))
        assert capture.drain()
        assert len(capture.ring) <= 5 and capture.ring.nbytes <= budget
        if i == 18:
            assert capture.encoded == 0  # 19 frames in the ring, none encoded
            assert all(s.image is not None and s.jpeg is None for s in capture.ring)
    rows = store.frames()
    assert [r["frame_index"] for r in rows] == [15, 16, 17, 18, 19, 20, 21]
    assert capture.totals["captured"] == 7 and capture.encoded == 7
    image = decode_jpeg((tmp_path / "ev" / rows[0]["image"]).read_bytes())
    assert image.shape == (576, 768, 3)
    assert np.abs(image.astype(np.int16) - before[15]).mean() < 3  # one encoding of frame 15
    assert all(np.array_equal(f.image, b)  # type: ignore[arg-type]
               for (f, _, _), b in zip(measured, before, strict=True))  # nobody wrote into them
    capture.close()


def test_frames_too_large_for_the_ring_raw_are_encoded_into_it(
        tmp_path: Path, ssd_config: AgentConfig, ssd_engine: InferenceEngine,
        vtest_frames: list[np.ndarray], caplog: pytest.LogCaptureFixture) -> None:
    """ring_mb 1: five 1.3 MiB frames do not fit, so the ring keeps JPEGs (logged once), and
    a write takes the ring's JPEG as it is."""
    measured = _measured(ssd_config, ssd_engine, vtest_frames[::4][:8])
    ev = EvidenceConfig(enabled=True, pre_frames=5, post_frames=0, ring_mb=1.0,
                        baseline_per_hour=0.0, near_threshold_per_hour=0.0, dedup_max_diff=0.0)
    store = EvidenceStore(tmp_path / "ev", 1 << 30)
    capture = EvidenceCapture(ev, store, Identity("cam", "sha", "ref"), clock=ManualClock())
    with caplog.at_level(logging.WARNING, logger="edgewatch.agent.evidence.capture"):
        for frame, result, m in measured:
            capture.observe(frame, result, m, (0.0, 10.0))  # type: ignore[arg-type]
            assert capture.drain() and capture.ring.nbytes <= 2**20
        assert capture.encoded == 8 and len(capture.ring) == 5
        assert all(s.image is None and s.jpeg for s in capture.ring)
        capture.alert(_alert(0, 0.0))
        assert capture.drain()
    assert capture.encoded == 8 and capture.totals["captured"] == 5
    warnings = [r.getMessage() for r in caplog.records if "ring_mb" in r.getMessage()]
    assert len(warnings) == 1 and "768x576" in warnings[0] and "ring_mb = 7 " in warnings[0]
    (row,) = store.frames()[:1]
    assert decode_jpeg((tmp_path / "ev" / row["image"]).read_bytes()).shape == (576, 768, 3)
    capture.close()


def test_caps_and_prelabels(ssd_engine: InferenceEngine,
                            vtest_frames: list[np.ndarray]) -> None:
    clock = ManualClock()
    caps = Caps(4, 0, clock)
    for _ in range(2):
        assert caps.allow(routine=True)
        caps.record()
    assert not caps.allow(routine=True) and caps.allow()  # routine frames: half the cap
    labels = prelabels(ssd_engine.infer(vtest_frames[0]).output, lambda c: f"c{c}", 0.4)
    assert labels is not None and len(labels["boxes"]) == len(labels["names"]) >= 1
    assert json.loads(json.dumps(labels)) == labels
