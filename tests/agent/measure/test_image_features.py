"""Input features on synthetic frames whose true values are known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgewatch.agent.measure.image import IMAGE_FEATURES, ImageFeatureExtractor

fx = ImageFeatureExtractor(analysis_width=256)


def flat(value: int, shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)


def test_black_frame() -> None:
    f = fx(flat(0))
    assert set(f) == set(IMAGE_FEATURES)
    assert f["brightness"] == 0 and f["contrast"] == 0 and f["dark_fraction"] == 1.0
    assert f["bright_fraction"] == 0 and f["entropy"] == 0 and f["greyscale"] == 1.0
    assert f["width"] == 640 and f["height"] == 480


def test_overexposed_frame() -> None:
    f = fx(flat(255))
    assert f["bright_fraction"] == 1.0 and f["brightness"] == pytest.approx(255)


def test_colour_frame_cast_and_saturation() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    img[:] = (40, 80, 200)  # BGR: strong red
    f = fx(img)
    assert f["cast_red_blue"] == pytest.approx(160)
    assert f["cast_green_magenta"] == pytest.approx(80 - 120)
    assert f["saturation"] == pytest.approx(255 * (200 - 40) / 200, abs=1)
    assert f["greyscale"] == 0.0


def test_noise_estimate_tracks_added_gaussian_noise() -> None:
    rng = np.random.default_rng(0)
    luma_gain = np.sqrt(0.299**2 + 0.587**2 + 0.114**2)  # independent noise per channel
    for sigma in (5.0, 15.0):
        same = rng.normal(0, sigma, (576, 768, 1)).repeat(3, axis=2)
        img = np.clip(128 + same, 0, 255).astype(np.uint8)
        assert fx(img)["noise"] == pytest.approx(sigma, rel=0.15)
        per_channel = rng.normal(0, sigma, (576, 768, 3))
        img = np.clip(128 + per_channel, 0, 255).astype(np.uint8)
        assert fx(img)["noise"] == pytest.approx(sigma * luma_gain, rel=0.15)


def test_blur_lowers_sharpness_and_edge_density(vtest_frames: list[np.ndarray]) -> None:
    frame = vtest_frames[0]
    blurred = cv2.GaussianBlur(frame, (0, 0), 4)
    sharp, soft = fx(frame), fx(blurred)
    assert soft["sharpness"] < sharp["sharpness"] / 5
    assert soft["edge_density"] < sharp["edge_density"]


def test_entropy_of_two_equal_levels_is_one_bit() -> None:
    img = flat(0)
    img[:, :320] = 200
    assert fx(img)["entropy"] == pytest.approx(1.0, abs=0.01)


def test_greyscale_colour_frame_from_ir_camera(vtest_frames: list[np.ndarray]) -> None:
    grey = cv2.cvtColor(cv2.cvtColor(vtest_frames[0], cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert fx(grey)["greyscale"] == 1.0
    assert fx(vtest_frames[0])["greyscale"] == 0.0


def test_single_channel_input_is_accepted() -> None:
    f = fx(np.full((100, 100), 50, np.uint8))
    assert f["brightness"] == pytest.approx(50)
