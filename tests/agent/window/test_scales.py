"""Floors of the reference spread (edgewatch.agent.window.scales): one for every feature the
agent measures, and a tiny default for raw model outputs."""

from __future__ import annotations

from edgewatch.agent.measure.image import IMAGE_FEATURES
from edgewatch.agent.measure.outputs import CLASSIFIER_FEATURES, DETECTOR_FEATURES
from edgewatch.agent.window.scales import DEFAULT_MIN_SCALE, MIN_SCALE, min_scale


def test_every_measured_feature_has_a_floor_and_no_floor_is_for_nothing() -> None:
    measured = {*IMAGE_FEATURES, *DETECTOR_FEATURES, *CLASSIFIER_FEATURES}
    assert set(MIN_SCALE) == measured
    assert all(min_scale(name) == MIN_SCALE[name] > DEFAULT_MIN_SCALE for name in measured)


def test_fractions_have_floors_below_one_and_grey_levels_at_least_one() -> None:
    fractions = [n for n, (unit, _) in IMAGE_FEATURES.items() if unit == "fraction"]
    assert fractions and all(MIN_SCALE[n] < 0.1 for n in fractions)
    grey = [n for n, (unit, _) in IMAGE_FEATURES.items() if unit == "grey level"]
    assert grey and all(MIN_SCALE[n] >= 1.0 for n in grey if n != "noise")


def test_raw_output_statistics_get_the_default() -> None:
    assert min_scale("raw.logits.mean") == DEFAULT_MIN_SCALE
