"""Evidence capture: frames worth a look kept on the device, off the inference thread.

``EvidenceCapture`` is a monitor's frame observer and an alert consumer. The monitor
thread hands it each measured frame (``observe``) and the alert engine each alert
(``alert``); both only queue (a bounded queue: when it is full the item is dropped and
counted), and one worker thread does the rest: keeps the last frames in the pre-trigger
ring (raw, not encoded: ``ring``), decides what is kept (``triggers``), skips
near-duplicates, redacts faces when configured (a frame whose redaction fails is not
written), JPEG-encodes the frames it writes (those only) and writes them through the
``EvidenceStore``.

An alert of a watched metric that fires keeps the ring (phase ``pre``, the frames of the
window that fired it) and the next ``post_frames`` monitored frames (phase ``post``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgewatch.agent.evidence.redact import FaceRedactor, RedactionError
from edgewatch.agent.evidence.ring import (
    FrameRing,
    Shot,
    decode_jpeg,
    encode_jpeg,
    read_only,
)
from edgewatch.agent.evidence.store import EvidenceStore, StoreRefused
from edgewatch.agent.evidence.triggers import Caps, RoutineTriggers, near_duplicate, trigger
from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.records import (
    Classification,
    Detections,
    Frame,
    Image,
    InferenceResult,
    ModelOutput,
)
from edgewatch.clock import Clock, SystemClock
from edgewatch.config.maintenance import EvidenceConfig
from edgewatch.contracts import Alert

log = logging.getLogger(__name__)
TOP_K = 5
COUNTERS = ("captured", "bytes", "duplicates", "capped", "dropped", "evicted",
            "redaction_failed", "refused", "errors")
"""What ``take_counts`` reports: frames written and their bytes; frames not written because
they were near-duplicates, over a cap, dropped from a full queue, refused by the store
(budget or free disk), or failed redaction; frames evicted; worker errors."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """What every sidecar says about where the frame comes from."""

    device: str
    model_sha256: str
    reference_id: str
    score_threshold: float = 0.0


def scalar_features(numeric: dict[str, float | np.ndarray]) -> dict[str, float | None]:
    """The per-frame scalars of a measurement (NaN as None; per-detection arrays left out)."""
    out: dict[str, float | None] = {}
    for name, value in numeric.items():
        if isinstance(value, np.ndarray):
            continue
        v = float(value)
        out[name] = v if math.isfinite(v) else None
    return out


def prelabels(output: ModelOutput | None, label: Callable[[int], str],
              score_threshold: float) -> dict[str, Any] | None:
    """The model's outputs as pre-labels: detections at or above the operating threshold
    (boxes x1, y1, x2, y2 normalised to the frame), or a classifier's top-k."""
    if isinstance(output, Detections):
        kept = output.above(score_threshold)
        return {
            "kind": "detections", "score_threshold": score_threshold,
            "boxes": [[round(float(v), 5) for v in box] for box in kept.boxes],
            "class_ids": [int(c) for c in kept.classes],
            "names": [label(int(c)) for c in kept.classes],
            "scores": [round(float(s), 5) for s in kept.scores],
        }
    if isinstance(output, Classification):
        probs = np.asarray(output.probs, np.float64).reshape(-1)
        top = np.argsort(probs)[::-1][:TOP_K]
        return {"kind": "classification", "top": [
            {"class_id": int(i), "name": label(int(i)), "prob": round(float(probs[i]), 5)}
            for i in top]}
    return None


class EvidenceCapture:
    """The capture worker: ring, triggers, caps, redaction, store (see the module doc)."""

    def __init__(self, cfg: EvidenceConfig, store: EvidenceStore, identity: Identity, *,
                 label: Callable[[int], str] = str, redactor: FaceRedactor | None = None,
                 clock: Clock | None = None, seed: int | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.identity = identity
        self.label = label
        self.redactor = redactor
        self.clock = clock or SystemClock()
        self.ring = FrameRing(cfg.pre_frames, int(cfg.ring_mb * 2**20))
        self.encoded = 0
        """JPEG encodings done (worker thread): one per written frame, plus one per monitored
        frame while frames are too large to keep ``pre_frames`` of them raw in ``ring_mb``."""
        self._ring_jpeg: set[tuple[int, int]] = set()
        """Frame sizes JPEG-encoded into the ring (each logged once)."""
        self.caps = Caps(cfg.max_per_hour, cfg.max_per_day, self.clock)
        self.routine = RoutineTriggers(cfg.near_threshold_per_hour, cfg.baseline_per_hour,
                                       self.clock, seed)
        self.metrics = tuple(cfg.alert_metrics)
        self._post: dict[str, dict[str, Any]] = {}
        """Firing alerts still collecting post-trigger frames: their trigger and count."""
        self._last_thumb: np.ndarray | None = None
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=cfg.queue_size)
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="edgewatch-evidence",
                                        daemon=True)
        self._worker.start()

    # -- producers (monitor thread) -------------------------------------------------------

    def observe(self, frame: Frame, result: InferenceResult | None,
                measurement: FrameMeasurement, window: tuple[float, float]) -> None:
        """Queue one measured frame (never blocks: a full queue drops it, counted)."""
        if frame.image is None:
            return
        self._offer(("frame", frame, result, measurement, window))

    def alert(self, alert: Alert) -> None:
        """Queue an alert message (only new firings of watched metrics keep frames)."""
        if alert.state != "firing" or alert.renotify or alert.incident:
            return
        if not any(alert.metric == m or alert.metric.startswith(m + ".")
                   for m in self.metrics):
            return
        self._offer(("alert", alert))

    def _offer(self, item: tuple[Any, ...]) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._count("dropped")

    # -- counters -------------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n
            self._totals[name] += n

    def take_counts(self) -> dict[str, int]:
        """The counters since the last call (what a window summary reports)."""
        with self._lock:
            self._count_evictions()
            out, self._counts = self._counts, dict.fromkeys(COUNTERS, 0)
        out["stored_bytes"] = self._stored_bytes
        return out

    @property
    def totals(self) -> dict[str, int]:
        with self._lock:
            self._count_evictions()
            return dict(self._totals)

    _stored_bytes = 0
    _evicted_seen = 0

    def _count_evictions(self) -> None:  # under the lock
        n = self.store.evicted - self._evicted_seen
        if n:
            self._evicted_seen += n
            self._counts["evicted"] += n
            self._totals["evicted"] += n

    # -- worker ---------------------------------------------------------------------------

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline or not self._worker.is_alive():
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Handle what is queued, stop the worker and close the store."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._worker.join(timeout)
        self.store.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if item[0] == "frame":
                    self._frame(*item[1:])
                else:
                    self._alert(item[1])
            except Exception:  # nothing may stop the worker
                self._count("errors")
                log.exception("evidence capture failed")
            finally:
                self._queue.task_done()

    def _frame(self, frame: Frame, result: InferenceResult | None, m: FrameMeasurement,
               window: tuple[float, float]) -> None:
        assert frame.image is not None
        h, w = frame.image.shape[:2]
        extra: dict[str, Any] = {}
        if m.faults:
            extra["faults"] = list(m.faults)
        if math.isfinite(m.anomaly):
            extra["anomaly"] = round(float(m.anomaly), 4)
        image: Image | None = read_only(frame.image)
        jpeg = None
        if not self.ring.fits_raw(frame.image.nbytes):
            self._ring_too_small(w, h, frame.image.nbytes)
            image, jpeg = None, self._encode(frame.image)
        shot = Shot(frame.index, frame.timestamp, image, jpeg,
                    (w, h), window, None if m.thumbnail is None else m.thumbnail.copy(),
                    scalar_features(m.numeric),
                    result.output if result is not None else None, extra)
        self.ring.push(shot)
        for alert_id, post in list(self._post.items()):
            self._keep(shot, post["trigger"], routine=False)
            post["left"] -= 1
            if post["left"] <= 0:
                del self._post[alert_id]
        if shot.stored_id is None:
            routine = self.routine(shot.features)
            if routine is not None:
                self._keep(shot, routine, routine=True)

    def _encode(self, image: Image) -> bytes:
        self.encoded += 1
        return encode_jpeg(image, self.cfg.jpeg_quality)

    def _ring_too_small(self, w: int, h: int, nbytes: int) -> None:
        """Log (once per frame size) that frames this large are encoded into the ring."""
        if (w, h) in self._ring_jpeg:
            return
        self._ring_jpeg.add((w, h))
        need = math.ceil(self.cfg.pre_frames * nbytes / 2**20)
        log.warning("evidence: %d raw %dx%d frames (%.1f MiB each) do not fit in evidence.ring_mb "
                    "(%g MiB): the pre-trigger ring keeps them JPEG-encoded, which costs an "
                    "encoding per monitored frame; ring_mb = %d keeps them raw",
                    self.cfg.pre_frames, w, h, nbytes / 2**20, self.cfg.ring_mb, need)

    def _alert(self, alert: Alert) -> None:
        base = dict(alert_id=alert.id, rule=alert.rule, metric=alert.metric,
                    severity=alert.severity, subject=alert.subject,
                    alert_window={"start": alert.window.start, "end": alert.window.end})
        for shot in self.ring:
            self._keep(shot, trigger("alert", phase="pre", **base), routine=False)
        if self.cfg.post_frames > 0:
            self._post[alert.id] = {"trigger": trigger("alert", phase="post", **base),
                                    "left": self.cfg.post_frames}

    def _keep(self, shot: Shot, trig: dict[str, Any], *, routine: bool) -> None:
        """Write ``shot`` for ``trig`` (or add ``trig`` to it when it is already stored)."""
        if shot.stored_id is not None:
            self.store.add_trigger(shot.stored_id, trig)
            return
        if near_duplicate(shot.thumbnail, self._last_thumb, self.cfg.dedup_max_diff):
            self._count("duplicates")
            return
        if not self.caps.allow(routine):
            self._count("capped")
            return
        redacted: dict[str, Any] = {"redacted": False}
        if self.redactor is not None:
            try:  # on a copy: the ring's frame is the source's, read-only
                image = shot.image.copy() if shot.image is not None else decode_jpeg(
                    shot.jpeg or b"")
                faces = self.redactor.redact(image)
                jpeg = self._encode(image)
            except Exception as exc:  # RedactionError, or decoding: nothing is written
                self._count("redaction_failed")
                if not isinstance(exc, RedactionError):
                    log.exception("redaction failed")
                return
            redacted = {"redacted": True, "redactor_sha256": self.redactor.model_sha256,
                        "faces": len(faces)}
        elif shot.image is not None:
            jpeg = self._encode(shot.image)
        else:
            assert shot.jpeg is not None, "a shot keeps its pixels until it is written"
            jpeg = shot.jpeg
        captured = self.clock.now()
        frame_id = f"{int(captured * 1000):013d}-{shot.frame_index:07d}-{secrets.token_hex(2)}"
        sidecar = {
            "id": frame_id, "captured": captured, "time": shot.timestamp,
            "frame_index": shot.frame_index,
            "window": {"start": shot.window[0], "end": shot.window[1]},
            "device": self.identity.device, "model_sha256": self.identity.model_sha256,
            "reference_id": self.identity.reference_id,
            "triggers": [trig],
            "image_size": list(shot.size), "jpeg_quality": self.cfg.jpeg_quality,
            **redacted,
            "features": shot.features, **shot.extra,
            "prelabels": prelabels(shot.output, self.label, self.identity.score_threshold),
        }
        try:
            size = self.store.write(sidecar, jpeg)
        except StoreRefused as exc:
            self._count("refused")
            log.debug("evidence frame %d not written: %s", shot.frame_index, exc.reason)
            return
        shot.stored_id = frame_id
        shot.release()  # later triggers only add to its sidecar
        self.caps.record()
        self._last_thumb = shot.thumbnail
        self._count("captured")
        self._count("bytes", size)
        self._stored_bytes = self.store.total_bytes


def open_capture(cfg: EvidenceConfig, identity: Identity, *, label: Callable[[int], str] = str,
                 reserve_bytes: int = 0, clock: Clock | None = None) -> EvidenceCapture:
    """The configured capture with its store and (``redact.enabled``) its face detector."""
    redactor = None
    if cfg.redact.enabled:
        r = cfg.redact
        redactor = FaceRedactor(r.model, width=r.width, height=r.height,
                                score_threshold=r.score_threshold, margin=r.margin,
                                threads=r.threads)
    store = EvidenceStore(Path(cfg.path), int(cfg.max_mb * 2**20),
                          reserve_bytes + int(cfg.min_free_mb * 2**20))
    return EvidenceCapture(cfg, store, identity, label=label, redactor=redactor, clock=clock)
