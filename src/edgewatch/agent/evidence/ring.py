"""The pre-trigger ring: the last few monitored frames, JPEG-compressed in memory, so that
an incident's first frames can still be kept when its alert fires a window later."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from edgewatch.agent.records import Image, ModelOutput


class EncodeError(Exception):
    """OpenCV could not JPEG-encode a frame."""


def encode_jpeg(image: Image, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise EncodeError("cv2.imencode failed")
    return bytes(buf.tobytes())


def decode_jpeg(data: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise EncodeError("cv2.imdecode failed")
    return image  # type: ignore[no-any-return]


@dataclasses.dataclass(slots=True)
class Shot:
    """One monitored frame as evidence keeps it: the JPEG and what its sidecar needs."""

    frame_index: int
    timestamp: float
    jpeg: bytes
    size: tuple[int, int]
    """Width and height of the image."""
    window: tuple[float, float]
    """Start and end of the frame's window."""
    thumbnail: np.ndarray | None
    """The measurement's grey 32x24 thumbnail (near-duplicate checks)."""
    features: dict[str, float | None]
    output: ModelOutput | None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Faults and anomaly score of the frame."""
    stored_id: str | None = None
    """The evidence id once written (a frame is written once; later triggers are added)."""


class FrameRing:
    """The last ``size`` shots, oldest first (size 0 keeps none)."""

    def __init__(self, size: int) -> None:
        self._shots: deque[Shot] = deque(maxlen=max(size, 0))
        self.size = size

    def push(self, shot: Shot) -> None:
        if self.size > 0:
            self._shots.append(shot)

    def __iter__(self) -> Iterator[Shot]:
        return iter(list(self._shots))

    def __len__(self) -> int:
        return len(self._shots)

    @property
    def nbytes(self) -> int:
        """Memory held by the JPEGs."""
        return sum(len(s.jpeg) for s in self._shots)
