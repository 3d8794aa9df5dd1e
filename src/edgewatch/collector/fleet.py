"""Fleet views over stored summaries: merged histograms per model, peer outliers.

A summary's ``reference_id`` names the model and reference profile its histograms are
counted against, so summaries with the same ``reference_id`` share their bins and merge
by adding counts, whichever device sent them. Everything here is a pure function of the
summaries (schema 2, as :meth:`edgewatch.collector.store.Store.summaries` returns them).

>>> from edgewatch.contracts.summary import Frames, Labels, Numeric, Summary, Window
>>> a = Summary(Window(0, 10), "r", Frames(), device="a",
...             features={"x": Numeric([0, 2, 1])},
...             labels={"classes": Labels({"car": 2})})
>>> b = Summary(Window(5, 20, windows=3), "r", Frames(), device="b",
...             features={"x": Numeric([1, 0, 4], missing=2)},
...             labels={"classes": Labels({"car": 1, "bus": 1})})
>>> w = fleet_histograms([a, b])["r"]
>>> w.features["x"], w.missing["x"], w.labels["classes"], (w.devices, w.summaries, w.windows)
([1, 2, 5], 2, {'bus': 1, 'car': 3}, (2, 2, 4))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edgewatch.contracts.summary import Summary
from edgewatch.errors import StatsError
from edgewatch.stats import BinnedHistogram
from edgewatch.stats.distances import js_distance

MIN_PEER_DEVICES = 3
"""Devices sharing a reference needed before any of them is compared with its peers."""


DeviceStateName = Literal["online", "offline", "stale"]


def device_state_of(online: bool, last_window_end: float | None, status_time: float | None,
                    now: float, stale_after_s: float) -> DeviceStateName:
    """``offline``; ``stale`` when online but neither a summary window nor the birth ended
    within ``stale_after_s``; else ``online``. The one definition the metrics and the
    operator views share.

    >>> device_state_of(True, last_window_end=100.0, status_time=50.0, now=200.0,
    ...                 stale_after_s=300.0)
    'online'
    >>> device_state_of(True, last_window_end=100.0, status_time=50.0, now=500.0,
    ...                 stale_after_s=300.0)
    'stale'
    >>> device_state_of(False, last_window_end=100.0, status_time=50.0, now=200.0,
    ...                 stale_after_s=300.0)
    'offline'
    """
    if not online:
        return "offline"
    marks = [t for t in (last_window_end, status_time) if t is not None]
    if not marks or now - max(marks) > stale_after_s:
        return "stale"
    return "online"


def counts_as_drifting(state: DeviceStateName, severity: str | None) -> bool:
    """A device counts as drifting when it is not offline and its latest verdict is drift
    (an offline device's last verdict is history): ``edgewatch_fleet_drifting_devices``
    and ``edgewatch fleet status`` both count this way."""
    return state != "offline" and severity == "drift"

@dataclass(frozen=True)
class FleetWindow:
    """The summaries of one reference (model + profile) merged across the fleet."""

    reference_id: str
    devices: int
    """Distinct devices merged (summaries without a ``device`` field are not counted)."""
    summaries: int
    """Summaries merged."""
    windows: int
    """Original windows merged (a compacted summary counts its ``window.windows``)."""
    start: float | None
    end: float | None
    features: dict[str, list[int]] = field(default_factory=dict)
    """Numeric feature -> bin counts ``[underflow, bins..., overflow]``, summed."""
    missing: dict[str, int] = field(default_factory=dict)
    """Numeric feature -> NaN values, summed."""
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    """Categorical feature -> label -> count, summed."""


@dataclass(frozen=True)
class PeerOutlier:
    """A device whose recent distribution of a feature stands apart from its peers'."""

    device: str
    reference_id: str
    feature: str
    js: float
    """Jensen-Shannon distance (base 2, in [0, 1]) between the device and its peers."""
    peers: int
    """Other devices (same reference) merged into the comparison."""


@dataclass
class _Accumulator:
    devices: set[str] = field(default_factory=set)
    summaries: int = 0
    windows: int = 0
    start: float | None = None
    end: float | None = None
    features: dict[str, list[int]] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, summary: Summary) -> None:
        if summary.device:
            self.devices.add(summary.device)
        self.summaries += 1
        window = summary.window
        self.windows += window.windows
        self.start = _extreme(min, self.start, window.start)
        self.end = _extreme(max, self.end, window.end)
        for name, feat in summary.features.items():
            self._add_counts(summary.reference_id, summary.device, name, feat.counts)
            self.missing[name] = self.missing.get(name, 0) + feat.missing
        for name, cat in summary.labels.items():
            mix = self.labels.setdefault(name, {})
            for label, n in cat.counts.items():
                mix[label] = mix.get(label, 0) + n

    def _add_counts(self, reference_id: str, device: str, name: str,
                    counts: list[int]) -> None:
        total = self.features.get(name)
        if total is None:
            self.features[name] = list(counts)
        elif len(total) != len(counts):
            raise StatsError(
                f"reference {reference_id!r}, feature {name!r}: device "
                f"{device!r} sent {len(counts)} bins, others {len(total)}")
        else:
            for i, c in enumerate(counts):
                total[i] += c

    def freeze(self, reference_id: str) -> FleetWindow:
        return FleetWindow(
            reference_id=reference_id, devices=len(self.devices), summaries=self.summaries,
            windows=self.windows, start=self.start, end=self.end,
            features=self.features, missing=self.missing,
            labels={k: dict(sorted(v.items())) for k, v in self.labels.items()})


def _extreme(pick: Callable[[float, float], float], current: float | None,
             value: float) -> float:
    return value if current is None else pick(current, value)


def _merge(summaries: Iterable[Summary]) -> dict[str, _Accumulator]:
    merged: dict[str, _Accumulator] = {}
    for summary in summaries:
        if not summary.reference_id:
            raise StatsError("summary lacks its 'reference_id'")
        merged.setdefault(summary.reference_id, _Accumulator()).add(summary)
    return merged


def fleet_histograms(summaries: Iterable[Summary]) -> dict[str, FleetWindow]:
    """Merge summaries per ``reference_id``: bin counts and label counts add.

    Raises StatsError when a summary has an empty ``reference_id`` or when two summaries of
    one reference disagree on a feature's number of bins.
    """
    return {ref: acc.freeze(ref) for ref, acc in sorted(_merge(summaries).items())}


def _js(own: list[int], peers: list[int]) -> float | None:
    """JS distance between two count vectors, or None when either side is empty."""
    if len(own) < 2 or len(own) != len(peers) or sum(own) == 0 or sum(peers) == 0:
        return None
    edges = np.arange(len(own) - 1, dtype=np.float64)  # dummy: only the counts matter
    return js_distance(BinnedHistogram(edges, own), BinnedHistogram(edges, peers))


def peer_outliers(
    latest: Mapping[str, Iterable[Summary]],
    threshold_js: float = 0.3,
    min_windows: int = 1,
) -> list[PeerOutlier]:
    """Devices whose recent windows of a numeric feature differ from their peers'.

    ``latest`` maps each device to its recent summaries. Per device and ``reference_id``
    the summaries merge (a device needs ``min_windows`` of them to take part); for every
    reference shared by at least :data:`MIN_PEER_DEVICES` devices, each device's counts
    are compared with the sum of the other devices' counts by the Jensen-Shannon distance
    (peers with more frames weigh more). Features above ``threshold_js`` are returned,
    largest distance first. A feature with no finite value on either side is skipped.
    """
    by_reference: dict[str, dict[str, _Accumulator]] = {}
    for device, summaries in latest.items():
        for ref, acc in _merge(summaries).items():
            if acc.summaries >= min_windows:
                by_reference.setdefault(ref, {})[device] = acc
    found: list[PeerOutlier] = []
    for ref, devices in sorted(by_reference.items()):
        if len(devices) < MIN_PEER_DEVICES:
            continue
        totals = _totals(ref, devices)
        for device, acc in sorted(devices.items()):
            for name, own in sorted(acc.features.items()):
                total = totals.get(name)
                if total is None or len(total) != len(own):
                    continue
                js = _js(own, [t - o for t, o in zip(total, own)])
                if js is not None and js > threshold_js:
                    peers = sum(1 for d, a in devices.items() if d != device and name in a.features)
                    found.append(PeerOutlier(device, ref, name, js, peers))
    found.sort(key=lambda o: (-o.js, o.device, o.feature))
    return found


def _totals(reference_id: str, devices: Mapping[str, _Accumulator]) -> dict[str, list[int]]:
    """Feature -> counts summed over the devices (StatsError if their bins disagree)."""
    fleet = _Accumulator()
    for device, acc in devices.items():
        for name, counts in acc.features.items():
            fleet._add_counts(reference_id, device, name, counts)
    return fleet.features
