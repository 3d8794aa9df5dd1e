"""Blurring faces before an evidence frame is written: a face detector run like any model.

``FaceRedactor`` loads a CenterFace ONNX model (heatmap, scale, offset and landmark
outputs at a quarter of the input resolution). Exported CenterFace files declare a fixed
input shape; ``shapes.dynamic_dims`` frees it in memory at load, so the device needs
neither ``onnx`` nor a conversion step. A frame is resized to the configured input size
(multiples of 32), faces are decoded (box size ``exp(scale) * 4``, centre ``(cell + offset
+ 0.5) * 4``, non-maximum suppression at IoU 0.3), mapped back to the frame, enlarged by a
margin and blurred beyond recognition. Any failure raises ``RedactionError``: the caller
then writes nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edgewatch.agent.evidence.shapes import dynamic_dims
from edgewatch.agent.inference.engine import file_sha256
from edgewatch.agent.records import Image

NMS_IOU = 0.3


class RedactionError(Exception):
    """The face detector failed on a frame (or could not be loaded): nothing is written."""


@dataclasses.dataclass(frozen=True, slots=True)
class Face:
    """A face box in frame pixels and the detector's score."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float


class FaceRedactor:
    """Finds faces with a CenterFace model and blurs them in place."""

    def __init__(self, model_path: str, *, width: int = 640, height: int = 480,
                 score_threshold: float = 0.3, margin: float = 0.2, threads: int = 1) -> None:
        if width % 32 or height % 32:
            raise ValueError("the face detector's input width and height must be multiples "
                             "of 32")
        self.width, self.height = width, height
        self.score_threshold = score_threshold
        self.margin = margin
        try:
            model = Path(model_path).read_bytes()
            self.model_sha256 = file_sha256(model_path)
            options = ort.SessionOptions()
            options.log_severity_level = 3  # unused initializers of old exports are noise
            options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(dynamic_dims(model), options,
                                                providers=["CPUExecutionProvider"])
        except (OSError, ValueError, RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail) \
                as exc:
            raise RedactionError(f"cannot load the face detector {model_path}: {exc}") from exc
        self.input_name = self.session.get_inputs()[0].name

    def detect(self, image: Image) -> list[Face]:
        """Faces in a BGR frame, in frame pixels."""
        h, w = image.shape[:2]
        resized = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        tensor = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB).astype(np.float32)
        tensor = np.ascontiguousarray(tensor.transpose(2, 0, 1)[None])
        try:
            heatmap, scale, offset, _ = self.session.run(None, {self.input_name: tensor})
        except Exception as exc:
            raise RedactionError(f"face detector failed: {exc}") from exc
        faces = decode(heatmap, scale, offset, self.score_threshold,
                       (self.height, self.width))
        sx, sy = w / self.width, h / self.height
        return [Face(f.x1 * sx, f.y1 * sy, f.x2 * sx, f.y2 * sy, f.score) for f in faces]

    def redact(self, image: Image) -> list[Face]:
        """Blur every face found in ``image`` (in place); the faces."""
        faces = self.detect(image)
        for face in faces:
            blur_box(image, face, self.margin)
        return faces


def decode(heatmap: npt.NDArray[np.float32], scale: npt.NDArray[np.float32],
           offset: npt.NDArray[np.float32], threshold: float,
           size: tuple[int, int]) -> list[Face]:
    """CenterFace outputs of one image to face boxes in input pixels, after NMS."""
    height, width = size
    heat = heatmap[0, 0]
    rows, cols = np.nonzero(heat > threshold)
    if rows.size == 0:
        return []
    s0 = np.exp(scale[0, 0, rows, cols]) * 4  # box height
    s1 = np.exp(scale[0, 1, rows, cols]) * 4  # box width
    cy = (rows + offset[0, 0, rows, cols] + 0.5) * 4
    cx = (cols + offset[0, 1, rows, cols] + 0.5) * 4
    x1 = np.clip(cx - s1 / 2, 0, width)
    y1 = np.clip(cy - s0 / 2, 0, height)
    x2 = np.clip(x1 + s1, 0, width)
    y2 = np.clip(y1 + s0, 0, height)
    scores = heat[rows, cols]
    rects = [[float(a), float(b), float(c - a), float(d - b)]
             for a, b, c, d in zip(x1, y1, x2, y2)]
    keep = cv2.dnn.NMSBoxes(rects, scores.astype(float).tolist(), threshold, NMS_IOU)
    return [Face(float(x1[i]), float(y1[i]), float(x2[i]), float(y2[i]), float(scores[i]))
            for i in np.asarray(keep).reshape(-1)]


def blur_box(image: Image, face: Face, margin: float = 0.2) -> None:
    """Make a face box (enlarged by ``margin`` of its size on each side) unrecognisable:
    pixelated to at most 6 blocks across, then smoothed."""
    h, w = image.shape[:2]
    bw, bh = face.x2 - face.x1, face.y2 - face.y1
    x1 = int(max(0, face.x1 - margin * bw))
    y1 = int(max(0, face.y1 - margin * bh))
    x2 = int(min(w, np.ceil(face.x2 + margin * bw)))
    y2 = int(min(h, np.ceil(face.y2 + margin * bh)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    roi = image[y1:y2, x1:x2]
    small = cv2.resize(roi, (min(6, x2 - x1), min(6, y2 - y1)), interpolation=cv2.INTER_AREA)
    block = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    k = max(3, (min(x2 - x1, y2 - y1) // 4) | 1)
    roi[:] = cv2.GaussianBlur(block, (k, k), 0)
