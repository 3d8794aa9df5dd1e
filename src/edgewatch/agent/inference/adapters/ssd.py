"""TensorFlow Object Detection API outputs (SSD, SSDLite, ...), NMS done inside the graph.

Outputs, matched by name: ``num_detections`` [N], ``detection_boxes`` [N, K, 4] as normalised
(y1, x1, y2, x2), ``detection_scores`` [N, K] and ``detection_classes`` [N, K] (class ids as
floats, 1-based for COCO).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edgewatch.agent.inference.adapters.base import OutputAdapter, TensorSpec
from edgewatch.agent.inference.preprocess import Geometry
from edgewatch.agent.records import Detections

ROLES = ("num_detections", "detection_boxes", "detection_scores", "detection_classes")
COCO_MAX_ID = 90
"""The largest class id of the TF Object Detection API's COCO models (ids 1..90, some unused;
the graph does not declare it). A labels file for them has 90 lines, line k naming id k."""
COCO_FIRST_NAME = "person"
"""COCO id 1: a labels file starting with it is taken for a COCO list."""
_XYXY = np.array([1, 0, 3, 2])
"""Columns of a (y1, x1, y2, x2) box in (x1, y1, x2, y2) order."""
_maximum, _minimum = np.maximum, np.minimum
"""Clipping to 0..1 as two ufuncs in place (``np.clip`` costs more in Python than in C for
a few boxes; NaN stays NaN either way)."""


class SsdAdapter(OutputAdapter):
    name = "ssd"
    _order: tuple[int, int, int, int] = (0, 1, 2, 3)

    def check(self, outputs: Sequence[TensorSpec]) -> None:
        order = []
        for role in ROLES:
            found = [i for i, o in enumerate(outputs) if role in o.name]
            if len(found) != 1:
                raise self.mismatch(f"expected exactly one output named like '{role}'", outputs)
            order.append(found[0])
        boxes = outputs[order[1]]
        if len(boxes.shape) != 3 or boxes.fixed(2) not in (None, 4):
            raise self.mismatch("detection_boxes must be [N, K, 4]", outputs)
        self._order = (order[0], order[1], order[2], order[3])

    def decode(
        self, outputs: Sequence[npt.NDArray[np.generic]], geometry: Geometry
    ) -> Detections:
        order = self._order
        n = int(np.asarray(outputs[order[0]]).ravel()[0])
        s = np.asarray(outputs[order[2]], np.float32)[0, :n]
        if s.size == 0:
            return Detections.empty()
        best = float(s.max())
        keep = np.flatnonzero(s >= self.floor)[: self.post.max_detections]
        # (y1, x1, y2, x2) -> (x1, y1, x2, y2) in the same gather, clipped in place
        xyxy = np.asarray(outputs[order[1]], np.float32)[0][keep[:, None], _XYXY]
        return Detections(
            boxes=_minimum(_maximum(xyxy, 0.0, out=xyxy), 1.0, out=xyxy),
            scores=s[keep],
            classes=np.asarray(outputs[order[3]])[0, keep].astype(np.int64),
            best_score=best,
        )

    def empty(self) -> Detections:
        return Detections.empty()
