"""One frame's measurement: input features, output features and timings together."""

from __future__ import annotations

import dataclasses
import time
from typing import cast

import numpy as np

from edgewatch.agent.measure.image import IMAGE_FEATURES, ImageFeatureExtractor
from edgewatch.agent.measure.outputs import OutputFeatureExtractor
from edgewatch.agent.records import Frame, InferenceResult, SignalChange, Timings

Numeric = dict[str, float | np.ndarray]


@dataclasses.dataclass(slots=True)
class FrameMeasurement:
    """Everything the window keeps about one monitored frame."""

    index: int
    timestamp: float
    numeric: Numeric
    labels: dict[str, list[str]]
    timings: Timings | None
    monitor_ms: float
    nonfinite: bool = False
    decode_error: bool = False
    """The source could not decode this frame (no image and no model output)."""
    thumbnail: np.ndarray | None = None
    """Grey 32x24 thumbnail for frozen-stream detection; None when there was no image."""
    faults: list[str] = dataclasses.field(default_factory=list)
    """Data-quality faults of this frame (filled in by the quality tracker)."""
    anomaly: float = float("nan")
    """Anomaly score against the reference (filled in by the monitor)."""
    signal: SignalChange | None = None
    """The no-signal state changed with this frame (filled in by the frame checks)."""
    inference_error: bool = False
    """The model failed on this frame (no model output; set by the monitor)."""
    context: str = ""
    """The reference context this frame matched ("" or "default": the default reference;
    set by the context references' checks, ``edgewatch.agent.window.contexts``)."""


class FrameMeasurer:
    """Computes a FrameMeasurement; input features are missing when no image is given."""

    def __init__(self, images: ImageFeatureExtractor, outputs: OutputFeatureExtractor) -> None:
        self.images = images
        self.outputs = outputs

    def __call__(self, frame: Frame, result: InferenceResult | None) -> FrameMeasurement:
        t0 = time.perf_counter()
        numeric: Numeric
        aspect = None
        thumbnail = None
        if frame.image is not None:
            features, thumbnail = self.images.extract(frame.image)
            numeric = cast(Numeric, features)  # a new dict every call: no copy needed
            h, w = frame.image.shape[:2]
            aspect = w / h
        else:
            numeric = dict.fromkeys(IMAGE_FEATURES, float("nan"))
        labels: dict[str, list[str]] = {}
        if result is not None:
            out = self.outputs(result.output, aspect)
            numeric.update(out.numeric)
            labels = out.labels
        ms = (time.perf_counter() - t0) * 1e3
        timings = result.timings if result is not None else None
        nonfinite = result.nonfinite if result is not None else False
        decode_error = frame.image is None and result is None
        return FrameMeasurement(frame.index, frame.timestamp, numeric, labels, timings, ms,
                                nonfinite, decode_error, thumbnail)
