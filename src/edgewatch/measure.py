"""One frame's measurement: input features, output features and timings together."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from edgewatch.image_features import IMAGE_FEATURES, ImageFeatureExtractor
from edgewatch.output_features import OutputFeatureExtractor
from edgewatch.records import Frame, InferenceResult, Timings

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


class FrameMeasurer:
    """Computes a FrameMeasurement; input features are missing when no image is given."""

    def __init__(self, images: ImageFeatureExtractor, outputs: OutputFeatureExtractor) -> None:
        self.images = images
        self.outputs = outputs

    def __call__(self, frame: Frame, result: InferenceResult | None) -> FrameMeasurement:
        t0 = time.perf_counter()
        numeric: Numeric
        aspect = None
        if frame.image is not None:
            numeric = dict(self.images(frame.image))
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
        return FrameMeasurement(frame.index, frame.timestamp, numeric, labels, timings, ms,
                                nonfinite)
