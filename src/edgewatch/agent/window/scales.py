"""The smallest change of each feature that is worth calling a change.

Drift effect sizes and anomaly z-scores divide by the reference's spread; a feature that
barely varies on the reference (a fixed camera's colour cast, a constant resolution)
would otherwise turn sensor noise into huge effects. Its spread is floored at these values.
"""

from __future__ import annotations

MIN_SCALE: dict[str, float] = {
    "brightness": 1.0, "contrast": 1.0, "saturation": 1.0,
    "cast_red_blue": 1.0, "cast_green_magenta": 1.0,
    "sharpness": 25.0, "noise": 0.1,
    "dark_fraction": 0.005, "bright_fraction": 0.005,
    "entropy": 0.02, "edge_density": 0.005, "greyscale": 0.25,
    "width": 1.0, "height": 1.0,
    "det_count": 0.5, "score_max": 0.02, "score_mean": 0.02, "near_threshold": 0.5,
    "box_area": 0.001, "box_aspect": 0.05,
    "top1_prob": 0.02, "margin": 0.02, "prob_entropy": 0.05,
}
DEFAULT_MIN_SCALE = 1e-6
"""For features without an entry (the statistics of 'raw' model outputs)."""


def min_scale(feature: str) -> float:
    return MIN_SCALE.get(feature, DEFAULT_MIN_SCALE)
