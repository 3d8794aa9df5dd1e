"""Turning a BGR frame into the model's input tensor, as configured."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import numpy.typing as npt

from edgewatch.agent.records import Image
from edgewatch.config.agent import PreprocessConfig

LETTERBOX_FILL = 114


@dataclasses.dataclass(frozen=True, slots=True)
class Geometry:
    """How model-input pixel coordinates map back to the original frame."""

    frame_width: int
    frame_height: int
    input_width: int
    input_height: int
    scale: float = 1.0
    """Input pixels per frame pixel (letterbox); 0 means stretched per axis."""
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_frame_normalised(self, xyxy: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Map (x1, y1, x2, y2) in model-input pixels to 0..1 frame coordinates."""
        out = xyxy.astype(np.float32, copy=True)
        if self.scale > 0:
            out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale / self.frame_width
            out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale / self.frame_height
        else:
            out[:, [0, 2]] /= self.input_width
            out[:, [1, 3]] /= self.input_height
        return np.clip(out, 0.0, 1.0)


class Preprocessor:
    """Resize, reorder channels, normalise and lay out one frame as a batch of one."""

    def __init__(self, cfg: PreprocessConfig) -> None:
        self.cfg = cfg
        self._dtype = np.dtype(cfg.dtype)
        self._mean = np.asarray(cfg.mean, np.float32)
        self._std = np.asarray(cfg.std, np.float32)
        self._identity = (
            cfg.scale == 1.0 and not self._mean.any() and bool(np.all(self._std == 1.0))
        )
        self._last: tuple[int, int, Geometry] | None = None
        """The last frame size's geometry (a source keeps its size: computed once)."""
        self._rgb, self._nchw = cfg.color == "RGB", cfg.layout == "NCHW"
        self._uint8 = self._dtype == np.uint8
        """The configuration's choices, decided once: this runs for every frame."""

    def __call__(self, image: Image) -> tuple[npt.NDArray[np.generic], Geometry]:
        img, geometry = self._resize(image)
        if self._rgb:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if self._uint8:
            tensor: npt.NDArray[np.generic] = img
        else:
            x = img.astype(np.float32)
            if not self._identity:
                x = (x * self.cfg.scale - self._mean) / self._std
            tensor = x.astype(self._dtype, copy=False)
        if self._nchw:
            tensor = np.ascontiguousarray(tensor.transpose(2, 0, 1))
        return tensor[None], geometry

    def geometry(self, width: int, height: int) -> Geometry:
        """Where a width x height frame lands in the model input (without resizing it)."""
        tw, th = self.cfg.width, self.cfg.height
        if tw == 0 or (tw == width and th == height):
            return Geometry(width, height, width, height, 1.0)
        if self.cfg.resize == "stretch":
            return Geometry(width, height, tw, th, 0.0)
        scale = min(tw / width, th / height)
        nw, nh = round(width * scale), round(height * scale)
        pad_x, pad_y = (tw - nw) / 2.0, (th - nh) / 2.0
        top, left = round(pad_y - 0.1), round(pad_x - 0.1)
        return Geometry(width, height, tw, th, scale, float(left), float(top))

    def _resize(self, image: Image) -> tuple[Image, Geometry]:
        h, w = image.shape[:2]
        last = self._last
        if last is not None and last[0] == w and last[1] == h:
            g = last[2]
        else:
            g = self.geometry(w, h)
            self._last = (w, h, g)
        tw, th = g.input_width, g.input_height
        if (tw, th) == (w, h):
            return image, g
        if g.scale == 0.0:
            return cv2.resize(image, (tw, th), interpolation=cv2.INTER_LINEAR), g
        nw, nh = round(w * g.scale), round(h * g.scale)
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        if (nw, nh) == (tw, th):  # the frame has the input's aspect ratio: no border
            return resized, g
        top, left = int(g.pad_y), int(g.pad_x)
        canvas = cv2.copyMakeBorder(
            resized, top, th - nh - top, left, tw - nw - left,
            cv2.BORDER_CONSTANT, value=(LETTERBOX_FILL,) * 3,
        )
        return canvas, g
