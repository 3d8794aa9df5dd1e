"""The pre-trigger ring: the last few monitored frames, kept in memory so that an incident's
first frames can still be written when its alert fires a window later.

Frames are kept raw: a shot holds a read-only view of the array the source decoded (no copy,
no encoding), and only the frames that are written are JPEG-encoded, on the capture thread.
Nothing in the agent writes into a frame's image once it is monitored (sources decode each
frame into a new array; preprocessing, measurement and redaction work on their own copies),
and the read-only view makes the capture's own code fail loudly if it ever tried.

The ring holds at most ``budget`` bytes. Frames so large that ``size`` of them do not fit
raw (``fits_raw``: a 1080p BGR frame is 6 MiB, 4K 24 MiB) are JPEG-encoded into the ring
instead, the capture decides and logs it once; a shot larger than the whole budget is not
kept.
"""

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


def read_only(image: Image) -> Image:
    """A read-only view of ``image`` (no copy): writing through it raises."""
    view = image.view()
    view.flags.writeable = False
    return view


@dataclasses.dataclass(slots=True)
class Shot:
    """One monitored frame as evidence keeps it: its pixels (raw or JPEG) and what its
    sidecar needs."""

    frame_index: int
    timestamp: float
    image: Image | None
    """The frame itself, a read-only view (None when kept as ``jpeg``, or once written)."""
    jpeg: bytes | None
    """The frame JPEG-encoded (frames too large for the ring raw), else None."""
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

    @property
    def nbytes(self) -> int:
        """Memory held by the pixels."""
        if self.image is not None:
            return int(self.image.nbytes)
        return len(self.jpeg) if self.jpeg is not None else 0

    def release(self) -> None:
        """Drop the pixels (a written frame needs them no more)."""
        self.image = None
        self.jpeg = None


class FrameRing:
    """The last ``size`` shots, oldest first, holding at most ``budget`` bytes of pixels
    (size 0 keeps none)."""

    def __init__(self, size: int, budget: int) -> None:
        self._shots: deque[Shot] = deque(maxlen=max(size, 0))
        self.size = size
        self.budget = budget

    def fits_raw(self, nbytes: int) -> bool:
        """Whether ``size`` raw frames of ``nbytes`` each fit in the budget."""
        return self.size * nbytes <= self.budget

    def push(self, shot: Shot) -> bool:
        """Add ``shot``, dropping the oldest shots until the budget holds; False when it is
        not kept (size 0, or larger than the whole budget)."""
        if self.size <= 0 or shot.nbytes > self.budget:
            return False
        self._shots.append(shot)
        total = self.nbytes
        while total > self.budget:
            total -= self._shots.popleft().nbytes
        return True

    def __iter__(self) -> Iterator[Shot]:
        return iter(list(self._shots))

    def __len__(self) -> int:
        return len(self._shots)

    @property
    def nbytes(self) -> int:
        """Memory held by the shots' pixels (views of the source's frames count in full)."""
        return sum(s.nbytes for s in self._shots)
