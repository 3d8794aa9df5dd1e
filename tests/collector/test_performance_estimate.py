"""The label-free performance estimate (ATC on the reference's bins) against a direct numpy
computation on the same scores, and its merging."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from edgewatch.collector.performance_estimate import (
    atc_threshold,
    class_js,
    confidence_feature,
    estimate,
)
from edgewatch.contracts.reference import Histogram, Moments, NumericReference, Reference
from edgewatch.contracts.summary import Frames, Labels, Numeric, Summary, Window
from edgewatch.stats import BinnedHistogram, edges_from_values
from edgewatch.stats.moments import Moments as Mom


def reference_of(scores: np.ndarray, near: np.ndarray, classes: dict[str, int]) -> Reference:
    edges = edges_from_values(scores, bins=20)  # as profile build does
    hist = BinnedHistogram(edges)
    hist.update(scores)
    near_hist = BinnedHistogram(edges_from_values(near))
    near_hist.update(near)
    return Reference(
        id="ref-1", model_sha256="ab" * 32, model_name="m.onnx", adapter="ssd",
        feature_set_version="1", analysis_width=320, frames=scores.size, source="synthetic",
        created=1767225600.0,
        numeric={
            "score_max": NumericReference(
                Histogram(hist.counts.tolist(), edges.tolist()),
                Moments(count=scores.size, mean=float(scores.mean())), True, 0.9),
            "near_threshold": NumericReference(
                Histogram(near_hist.counts.tolist(), near_hist.edges.tolist()),
                Moments(count=near.size, mean=float(near.mean())), True, 0.5)},
        categorical={"classes": Labels(classes)})


def window_of(reference: Reference, scores: np.ndarray, near: np.ndarray,
              classes: dict[str, int], seq: int) -> Summary:
    edges = reference.numeric["score_max"].hist.edges
    hist = BinnedHistogram(edges)
    hist.update(scores)
    m = Mom()
    m.update(near)
    return Summary(
        window=Window(1767225600.0 + 10 * seq, 1767225610.0 + 10 * seq),
        reference_id=reference.id, frames=Frames(seen=scores.size, monitored=scores.size),
        device="cam", boot_id="b", seq=seq,
        features={"score_max": Numeric(hist.counts.tolist(), n=scores.size),
                  "near_threshold": Numeric([0], n=m.count, mean=m.mean)},
        labels={"classes": Labels(classes)})


@pytest.fixture
def scores() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {"ref": rng.beta(8, 2, 2000), "win": rng.beta(5, 3, 300),
            "ref_near": rng.poisson(1.0, 2000).astype(float),
            "win_near": rng.poisson(2.0, 300).astype(float)}


def test_threshold_is_the_reference_edge_closest_to_the_assumed_accuracy(
        scores: dict[str, np.ndarray]) -> None:
    ref = reference_of(scores["ref"], scores["ref_near"], {"person": 10})
    edges = np.asarray(ref.numeric["score_max"].hist.edges)
    for accuracy in (0.5, 0.8, 0.9, 0.95):
        k, share = atc_threshold(edges, ref.numeric["score_max"].hist.counts, accuracy)
        direct = np.array([np.mean(scores["ref"] >= e) for e in edges])
        assert share == pytest.approx(direct[k], abs=1e-12)
        assert abs(direct[k] - accuracy) == pytest.approx(np.min(np.abs(direct - accuracy)))


def test_estimate_equals_a_direct_numpy_computation_and_merges(
        scores: dict[str, np.ndarray]) -> None:
    ref_classes, win_classes = {"person": 900, "car": 100}, {"person": 200, "car": 100, "dog": 5}
    ref = reference_of(scores["ref"], scores["ref_near"], ref_classes)
    half = scores["win"].size // 2
    w1 = window_of(ref, scores["win"][:half], scores["win_near"][:half],
                   {"person": 120, "car": 40}, 1)
    w2 = window_of(ref, scores["win"][half:], scores["win_near"][half:],
                   {"person": 80, "car": 60, "dog": 5}, 2)
    got = estimate(ref, [w1, w2], 0.9)
    assert got is not None and got.feature == "score_max"
    # the same numbers straight from the scores
    t = got.threshold
    ref_share = float(np.mean(scores["ref"] >= t))
    share = float(np.mean(scores["win"] >= t))
    assert got.reference_share == pytest.approx(ref_share, abs=1e-12)
    assert got.share == pytest.approx(share, abs=1e-12)
    assert got.ratio == pytest.approx(share / ref_share)
    assert got.estimate == pytest.approx(min(1.0, 0.9 * share / ref_share))
    assert got.frames == scores["win"].size
    assert got.near_threshold_ratio == pytest.approx(
        scores["win_near"].mean() / scores["ref_near"].mean(), rel=1e-9)
    labels = ["car", "dog", "person"]
    p = np.array([ref_classes.get(k, 0) for k in labels], float)
    q = np.array([win_classes.get(k, 0) for k in labels], float)
    assert got.class_js == pytest.approx(jensenshannon(p, q, base=2), abs=1e-9)
    # the less confident window: the estimate falls below the reference's
    assert got.ratio < 0.9
    # windows merge exactly: one window holding both gives the same estimate
    both = window_of(ref, scores["win"], scores["win_near"], win_classes, 3)
    merged = estimate(ref, [both], 0.9)
    assert merged is not None
    assert msgspec.structs.asdict(merged) == pytest.approx(msgspec.structs.asdict(got))


def test_no_estimate_without_confidence_or_windows(scores: dict[str, np.ndarray]) -> None:
    ref = reference_of(scores["ref"], scores["ref_near"], {"person": 1})
    assert estimate(ref, [], 0.9) is None
    other = msgspec.structs.replace(
        window_of(ref, scores["win"], scores["win_near"], {}, 1), reference_id="another")
    assert estimate(ref, [other], 0.9) is None  # counted against another reference's bins
    bare = msgspec.structs.replace(ref, numeric={})
    assert confidence_feature(bare) is None and estimate(bare, [other], 0.9) is None
    assert class_js({}, {"a": 1}) is None and class_js({"a": 2}, {"a": 5}) == 0.0
    assert math.isclose(class_js({"a": 1}, {"b": 1}) or 0.0, 1.0)
