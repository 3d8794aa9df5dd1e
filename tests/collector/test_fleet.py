"""Fleet views over summaries (schema 2, as the store returns them): merged histograms per
reference, peer outliers."""

from __future__ import annotations

import doctest
import json

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from edgewatch.collector import fleet
from edgewatch.collector.fleet import fleet_histograms, peer_outliers
from edgewatch.contracts.summary import Summary
from edgewatch.contracts.summary_v1 import SummaryV1, compact
from edgewatch.errors import StatsError
from support.paths import DATA

EXAMPLE_TEXT = (DATA / "summary-example.json").read_text()
EXAMPLE = json.loads(EXAMPLE_TEXT)
BINS = 12


def synthetic(device: str, ref: str, features: dict[str, list[int]],
              labels: dict[str, int] | None = None, windows: int = 1,
              end: float = 100.0) -> Summary:
    """A schema-2 summary, written as a device before the compact encoding would send it."""
    return compact(msgspec.convert({
        "schema": "edgewatch.summary/1", "device": device, "boot_id": "b", "seq": 1,
        "reference_id": ref, "window": {"start": end - 10.0, "end": end, "windows": windows},
        "frames": {}, "features": {k: {"counts": v, "missing": 1} for k, v in features.items()},
        "labels": {"classes": {"counts": labels or {}, "missing": 0}},
    }, SummaryV1))


def normal_counts(rng: np.random.Generator, loc: float, n: int = 400) -> list[int]:
    """A histogram of n draws from N(loc, 1) over fixed bins on [-3, 3]."""
    edges = np.linspace(-3.0, 3.0, BINS - 1)
    idx = np.searchsorted(edges, rng.normal(loc, 1.0, n), side="right")
    counts: list[int] = np.bincount(idx, minlength=BINS).tolist()
    return counts


def test_module_doctest() -> None:
    assert doctest.testmod(fleet).failed == 0


def test_merge_is_elementwise_sum_per_reference() -> None:
    rng = np.random.default_rng(7)
    summaries = []
    for i in range(12):
        ref = "r1" if i % 3 else "r2"
        feats = {"a": rng.integers(0, 50, 8).tolist(), "b": rng.integers(0, 9, 5).tolist()}
        labels = {"person": int(rng.integers(0, 9)), **({"car": 2} if i % 2 else {})}
        summaries.append(synthetic(f"cam-{i % 4}", ref, feats, labels, windows=1 + i % 2,
                                   end=100.0 + i))
    merged = fleet_histograms(summaries)
    assert sorted(merged) == ["r1", "r2"]
    for ref, window in merged.items():
        mine = [s for s in summaries if s.reference_id == ref]
        for name in ("a", "b"):
            expected = np.sum([s.features[name].counts for s in mine], axis=0)
            assert window.features[name] == expected.tolist()
            assert window.missing[name] == len(mine)
        assert window.labels["classes"] == {
            label: sum(s.labels["classes"].counts.get(label, 0) for s in mine)
            for label in ("car", "person")}
        assert window.summaries == len(mine)
        assert window.windows == sum(s.window.windows for s in mine)
        assert window.devices == len({s.device for s in mine})
        assert (window.start, window.end) == (
            min(s.window.start for s in mine), max(s.window.end for s in mine))
    assert merged["r2"].devices == 4 and merged["r1"].devices == 4


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 10**6), min_size=6, max_size=6), min_size=1,
                max_size=20))
def test_merge_property(counts: list[list[int]]) -> None:
    summaries = [synthetic(f"d{i % 5}", "r", {"x": c}) for i, c in enumerate(counts)]
    window = fleet_histograms(summaries)["r"]
    assert window.features["x"] == [sum(col) for col in zip(*counts)]
    assert window.devices == min(5, len(counts))


def test_merge_of_the_real_example() -> None:
    example = msgspec.json.decode(EXAMPLE_TEXT, type=SummaryV1)
    copies = [compact(msgspec.structs.replace(example, device=f"cam-{i}")) for i in range(3)]
    window = fleet_histograms(copies)[EXAMPLE["reference_id"]]
    for name, feat in EXAMPLE["features"].items():
        assert window.features[name] == [3 * c for c in feat["counts"]]
    assert window.labels["position"] == {
        k: 3 * v for k, v in EXAMPLE["labels"]["position"]["counts"].items()}
    assert (window.devices, window.summaries, window.windows) == (3, 3, 3)
    assert fleet_histograms([]) == {}


def test_merge_refuses_bins_that_disagree() -> None:
    with pytest.raises(StatsError, match="bins"):
        fleet_histograms([synthetic("a", "r", {"x": [1, 2, 3]}),
                          synthetic("b", "r", {"x": [1, 2]})])
    nameless = msgspec.structs.replace(synthetic("a", "r", {}), reference_id="")
    with pytest.raises(StatsError, match="reference_id"):
        fleet_histograms([nameless])


def fleet_of(rng: np.random.Generator, shifts: dict[str, float],
             windows: int = 2) -> dict[str, list[Summary]]:
    """Devices with `windows` summaries each: feature x ~ N(shift, 1), y ~ N(0, 1)."""
    return {device: [synthetic(device, "r", {"x": normal_counts(rng, shift),
                                             "y": normal_counts(rng, 0.0)})
                     for _ in range(windows)]
            for device, shift in shifts.items()}


def test_shifted_device_is_flagged_and_identical_peers_are_not() -> None:
    rng = np.random.default_rng(1)
    latest = fleet_of(rng, {"cam-1": 0.0, "cam-2": 0.0, "cam-3": 0.0, "cam-4": 0.0,
                            "odd": 2.0})
    found = peer_outliers(latest)
    assert [(o.device, o.reference_id, o.feature, o.peers) for o in found] == [
        ("odd", "r", "x", 4)]
    assert found[0].js > 0.5

    same = {d: [synthetic(d, "r", {"x": [5, 10, 20, 10, 5]})] for d in ("a", "b", "c")}
    assert peer_outliers(same, threshold_js=0.0) == []


def test_js_matches_scipy_on_merged_peers() -> None:
    rng = np.random.default_rng(2)
    latest = fleet_of(rng, {"a": 0.0, "b": 0.5, "c": 1.5}, windows=3)
    found = {(o.device, o.feature): o for o in peer_outliers(latest, threshold_js=0.0)}
    own = np.sum([s.features["x"].counts for s in latest["c"]], axis=0)
    peers = np.sum([s.features["x"].counts for d in "ab" for s in latest[d]], axis=0)
    assert found[("c", "x")].js == pytest.approx(jensenshannon(own, peers, base=2), abs=1e-9)
    ordered = peer_outliers(latest, threshold_js=0.0)
    assert [o.js for o in ordered] == sorted((o.js for o in ordered), reverse=True)


def test_peer_comparison_needs_three_devices_and_min_windows() -> None:
    rng = np.random.default_rng(3)
    assert peer_outliers(fleet_of(rng, {"a": 0.0, "odd": 3.0})) == []
    latest = fleet_of(rng, {"a": 0.0, "b": 0.0, "c": 0.0, "odd": 3.0}, windows=2)
    latest["c"] = latest["c"][:1]
    found = peer_outliers(latest, min_windows=2)  # c sits out: odd has two peers
    # (with so few devices, odd also weighs half of a's and b's peers: they may show too)
    assert (found[0].device, found[0].feature, found[0].peers) == ("odd", "x", 2)
    assert {o.device for o in found if o.feature == "y"} == set()
    latest["b"] = latest["b"][:1]
    assert peer_outliers(latest, min_windows=2) == []  # only a and odd remain


def test_devices_on_other_references_are_not_peers() -> None:
    rng = np.random.default_rng(4)
    latest = fleet_of(rng, {"a": 0.0, "b": 0.0, "c": 0.0})
    latest["other"] = [synthetic("other", "r-new", {"x": normal_counts(rng, 3.0)})]
    assert peer_outliers(latest) == []
    # an empty feature on one side cannot be compared: skipped, not an error
    latest["a"] = [synthetic("a", "r", {"x": [0] * BINS, "y": normal_counts(rng, 0.0)})]
    flagged = {(o.device, o.feature) for o in peer_outliers(latest, 0.0)}
    assert ("a", "y") in flagged  # at threshold 0 every comparable feature is flagged
    assert ("a", "x") not in flagged
