"""Ultralytics YOLO exports: v8/v11 ``[1, 4+nc, N]`` and v5 ``[1, N, 5+nc]``.

Boxes are (cx, cy, w, h) in model-input pixels. v8/v11 rows carry class scores only;
v5 rows carry an objectness score that multiplies the class probabilities. Class-aware NMS
is applied here, then boxes are mapped back through the letterbox to the original frame.
The layout is told apart by shape: the axis of length N (anchors) is the longer one.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from edgewatch.agent.inference.adapters.base import OutputAdapter, TensorSpec
from edgewatch.agent.inference.preprocess import Geometry
from edgewatch.agent.records import Detections


class YoloAdapter(OutputAdapter):
    name = "yolo"

    def check(self, outputs: Sequence[TensorSpec]) -> None:
        if len(outputs) < 1:
            raise self.mismatch("expected one output", outputs)
        out = outputs[0]
        if len(out.shape) != 3:
            raise self.mismatch("expected the first output to be [1, 4+nc, N] or [1, N, 5+nc]",
                                outputs)
        a, b = out.fixed(1), out.fixed(2)
        if a is not None and b is not None and min(a, b) < 5:
            raise self.mismatch("too few values per box (need 4 box values and a class)", outputs)

    def empty(self) -> Detections:
        return Detections.empty()

    def decode(
        self, outputs: Sequence[npt.NDArray[np.generic]], geometry: Geometry
    ) -> Detections:
        pred = np.asarray(outputs[0], np.float32)[0]
        if pred.shape[0] < pred.shape[1]:  # v8/v11: (4+nc, N) -> (N, 4+nc)
            pred = pred.T
            boxes_cxcywh, cls_scores = pred[:, :4], pred[:, 4:]
        else:  # v5: (N, 5+nc), objectness in column 4
            boxes_cxcywh, cls_scores = pred[:, :4], pred[:, 5:] * pred[:, 4:5]
        if cls_scores.shape[1] == 0 or pred.shape[0] == 0:
            return Detections.empty()
        classes = cls_scores.argmax(axis=1)
        scores = cls_scores[np.arange(classes.size), classes]
        best = float(scores.max())
        cand = np.flatnonzero(scores >= self.floor)
        if cand.size == 0:
            return Detections(*_empty_arrays(), best_score=best)
        xywh = boxes_cxcywh[cand].copy()
        xywh[:, 0] -= xywh[:, 2] / 2.0
        xywh[:, 1] -= xywh[:, 3] / 2.0
        # OpenCV keeps scores strictly above its threshold; candidates are already >= floor.
        nms_floor = float(np.nextafter(np.float32(self.floor), np.float32(0.0)))
        keep = cv2.dnn.NMSBoxesBatched(
            xywh.tolist(), scores[cand].tolist(), classes[cand].tolist(),
            nms_floor, self.post.iou_threshold, top_k=self.post.max_detections,
        )
        idx = cand[np.asarray(keep, dtype=np.int64).ravel()]
        idx = idx[np.argsort(-scores[idx], kind="stable")][: self.post.max_detections]
        sel = boxes_cxcywh[idx]
        xyxy = np.stack(
            [sel[:, 0] - sel[:, 2] / 2, sel[:, 1] - sel[:, 3] / 2,
             sel[:, 0] + sel[:, 2] / 2, sel[:, 1] + sel[:, 3] / 2], axis=1,
        )
        return Detections(
            boxes=geometry.to_frame_normalised(xyxy),
            scores=scores[idx].astype(np.float32),
            classes=classes[idx].astype(np.int64),
            best_score=best,
        )


def _empty_arrays() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32],
                             npt.NDArray[np.int64]]:
    e = Detections.empty()
    return e.boxes, e.scores, e.classes
