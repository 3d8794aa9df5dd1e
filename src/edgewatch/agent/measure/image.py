"""Input (image-quality) features of one frame, computed cheaply on a downscaled view.

The frame is first reduced to ``analysis_width`` pixels wide by nearest-neighbour sampling
(about 0.1 ms for 768x576), which keeps pixel-level noise and sharpness visible, unlike
area averaging. All features are computed on that view; the same view is used when the
reference is built, so values are comparable. Units are grey levels (0..255) unless noted.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edgewatch.agent.records import Image

# Immerkaer (1996), "Fast noise variance estimation": sigma = sqrt(pi/2) / 6 * mean|I * K|.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
_NOISE_FACTOR = math.sqrt(math.pi / 2.0) / 6.0

DARK_LEVEL = 5
"""Luma at or below which a pixel counts as clipped dark."""
BRIGHT_LEVEL = 250
"""Luma at or above which a pixel counts as clipped bright."""
EDGE_LEVEL = 32.0
"""Absolute Laplacian response above which a pixel counts as an edge."""
_EDGE_INT = math.floor(EDGE_LEVEL)
"""The same test on the (integer) int16 Laplacian: |L| > EDGE_LEVEL is |L| > floor of it."""
GREY_TOLERANCE = 2.0
"""Mean |R-G| + |G-B| below which a frame counts as greyscale (monochrome or IR)."""

IMAGE_FEATURES: dict[str, tuple[str, str]] = {
    "brightness": ("grey level", "Mean luma (BT.601) of the frame."),
    "contrast": ("grey level", "Standard deviation of luma (RMS contrast)."),
    "saturation": ("0..255", "Mean HSV saturation."),
    "cast_red_blue": ("grey level", "Mean red minus mean blue: warm (+) or cold (-) cast."),
    "cast_green_magenta": (
        "grey level", "Mean green minus the mean of red and blue: green (+) or magenta (-) cast."
    ),
    "sharpness": ("grey level^2", "Variance of the Laplacian of luma (low means blurred)."),
    "noise": ("grey level", "Noise standard deviation estimate (Immerkaer 1996)."),
    "dark_fraction": ("fraction", f"Share of pixels with luma <= {DARK_LEVEL} (clipped dark)."),
    "bright_fraction": (
        "fraction", f"Share of pixels with luma >= {BRIGHT_LEVEL} (clipped bright)."
    ),
    "entropy": ("bits", "Shannon entropy of the 256-level luma histogram."),
    "edge_density": ("fraction", f"Share of pixels with |Laplacian| > {EDGE_LEVEL:g}."),
    "greyscale": ("0 or 1", "1 when the colour channels are (nearly) equal: monochrome or IR."),
    "width": ("pixels", "Frame width as delivered by the source."),
    "height": ("pixels", "Frame height as delivered by the source."),
}


THUMBNAIL_SIZE = (32, 24)
"""Width and height of the grey thumbnail kept to compare consecutive frames (frozen)."""


class ImageFeatureExtractor:
    """Computes IMAGE_FEATURES for BGR uint8 frames, and a small grey thumbnail."""

    def __init__(self, analysis_width: int = 160) -> None:
        self.analysis_width = analysis_width

    def analysis_view(self, image: Image) -> Image:
        h, w = image.shape[:2]
        if w <= self.analysis_width:
            return image
        new_h = max(1, round(h * self.analysis_width / w))
        return cv2.resize(image, (self.analysis_width, new_h), interpolation=cv2.INTER_NEAREST)

    def __call__(self, image: Image) -> dict[str, float]:
        return self.extract(image)[0]

    def extract(self, image: Image) -> tuple[dict[str, float], np.ndarray]:
        """Features and the float32 grey thumbnail (THUMBNAIL_SIZE) of one frame.

        Runs on the monitor thread for every measured frame, so each pass over the pixels
        counts: the Laplacian and the noise filter are taken as int16 (their values are
        integers, so every statistic of them is what float32 gives, only cheaper to get),
        and the colour differences |R-G| and |G-B| come from one ``absdiff`` of the
        interleaved pixels against themselves shifted by one channel.
        """
        h, w = image.shape[:2]
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        small = np.ascontiguousarray(self.analysis_view(image))
        sh, sw = small.shape[:2]
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        n = float(grey.size)
        mean, std = cv2.meanStdDev(grey)
        # as cv2.calcHist gives it (float32 counts), without the part of OpenCV's code
        # calcHist brings into memory
        hist = np.bincount(grey.ravel(), minlength=256).astype(np.float32)
        p = hist[hist > 0] / n
        lap = cv2.Laplacian(grey, cv2.CV_16S)
        _, lap_std = cv2.meanStdDev(lap)
        noise = cv2.filter2D(grey, cv2.CV_16S, _NOISE_KERNEL)
        b, g, r, _ = cv2.mean(small)
        hsv_s = cv2.mean(cv2.cvtColor(small, cv2.COLOR_BGR2HSV))[1]
        # pixel k's channels sit at 3k, 3k+1, 3k+2 of a row: |x[j+1] - x[j]| is |G-B| at
        # 3k, |R-G| at 3k+1 (and a difference across two pixels at 3k+2, not used)
        row = small.reshape(sh, sw * 3)
        shifted = np.empty((sh, sw * 3), np.uint8)
        shifted[:, -1] = 0
        cv2.absdiff(row[:, 1:], row[:, :-1], dst=shifted[:, :-1])
        diffs = cv2.mean(shifted.reshape(sh, sw, 3))
        chroma = diffs[1] + diffs[0]
        thumb = cv2.resize(grey, THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        return {
            "brightness": float(mean[0, 0]),
            "contrast": float(std[0, 0]),
            "saturation": float(hsv_s),
            "cast_red_blue": float(r - b),
            "cast_green_magenta": float(g - (r + b) / 2.0),
            "sharpness": float(lap_std[0, 0]) ** 2,
            "noise": _NOISE_FACTOR * cv2.norm(noise, cv2.NORM_L1) / n,
            "dark_fraction": float(hist[: DARK_LEVEL + 1].sum()) / n,
            "bright_fraction": float(hist[BRIGHT_LEVEL:].sum()) / n,
            "entropy": float(-(p * np.log2(p)).sum()),
            "edge_density": float(np.count_nonzero(np.abs(lap) > _EDGE_INT)) / n,
            "greyscale": 1.0 if chroma < GREY_TOLERANCE else 0.0,
            "width": float(w),
            "height": float(h),
        }, thumb
