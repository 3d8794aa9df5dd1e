"""The window summary: the replay line (``edgewatch.summary/1``) and the compact wire form
(``edgewatch.summary/2``).

Schema 1 is what ``replay`` writes and what devices before the compact encoding publish: every
statistic spelled out, 16 significant digits. Schema 2 is what devices publish now: the same
window with what the collector can recompute left out (standard deviations, latency
percentiles, anomaly rate and mean), floats at the precision that matters (float32, effects at
three significant digits), latency sketch keys as differences, and the full per-feature drift
details only for features that are not ``ok``. :func:`compact` turns a schema-1 record into
schema 2; the collector stores schema 2 only.
"""

from __future__ import annotations

import math
import struct
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from edgewatch.contracts.bounds import (
    MAX_BINS,
    MAX_FEATURES,
    MAX_ITEMS,
    MAX_LABELS,
    MAX_MERGED,
    MAX_REASONS,
    MAX_SKETCH_BUCKETS,
    Count,
    Id,
    Name,
    Real,
    Seq,
    SmallInt,
    Text,
    Time,
)
from edgewatch.contracts.envelope import Loss

SCHEMA_V1 = "edgewatch.summary/1"
SCHEMA = "edgewatch.summary/2"
Severity = Literal["ok", "warning", "drift"]
SEVERITY_RANK: dict[str, float] = {"ok": 0.0, "warning": 1.0, "drift": 2.0}
"""Drift verdicts as numbers (alert rules' ``drift.severity``, the collector's metrics)."""
QUALITY_FAULTS: tuple[str, ...] = (
    "decode_error", "black", "blank", "frozen", "overexposed", "underexposed", "blurred",
    "greyscale_switch", "resolution_change", "nonfinite_output", "empty_output_streak",
)
"""The data-quality faults agents report in ``quality`` (names outside it may appear)."""
Counts = Annotated[list[Count], Meta(max_length=MAX_BINS)]
LabelMap = Annotated[dict[Name, Count], Meta(max_length=MAX_LABELS)]
Faults = Annotated[dict[Name, Count], Meta(max_length=MAX_ITEMS)]
Onsets = Annotated[dict[Name, Time], Meta(max_length=MAX_ITEMS)]
Reasons = Annotated[list[Text], Meta(max_length=MAX_REASONS)]
MergedSeqs = Annotated[list[Seq], Meta(max_length=MAX_MERGED)]


class Window(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The time span a summary covers (stream time, seconds since the epoch)."""

    start: Time
    end: Time
    windows: Count = 1
    """Original windows merged into this one (outbox compaction)."""


class Frames(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What happened to the window's frames (zeros are left out on the wire)."""

    seen: Count = 0
    """Frames delivered by the source (decode failures included)."""
    monitored: Count = 0
    """Frames measured by the monitor."""
    dropped: Count = 0
    """Frames not measured because the monitor queue was full."""
    sampled_out: Count = 0
    """Frames skipped on purpose by features.every_nth or features.max_fps."""
    decode_errors: Count = 0
    """Frames the source could not decode."""
    nonfinite_outputs: Count = 0
    """Frames whose model outputs held NaN or Inf."""
    inference_errors: Count = 0
    """Frames on which onnxruntime raised."""


class Labels(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A categorical feature over the window: count per label."""

    counts: LabelMap = field(default_factory=dict)
    missing: Count = 0


class Resources(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The device's resources, sampled once per window (absent when not measured)."""

    process_cpu_percent: Real | None = None
    process_rss_mb: Real | None = None
    process_peak_rss_mb: Real | None = None
    system_cpu_percent: Real | None = None
    memory_percent: Real | None = None
    disk_percent: Real | None = None
    disk_free_mb: Real | None = None
    temperatures_c: Annotated[dict[Name, Real], Meta(max_length=MAX_ITEMS)] | None = None


class OutboxState(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The device's outbox when the window closed."""

    pending: Count = 0
    in_memory: Count = 0
    degraded: Text | None = None


KeyDelta = Annotated[int, Meta(ge=-(2**32), le=2**32)]
"""The difference of two sketch keys (each a 32-bit integer)."""


def _same_length(keys: list[int], counts: list[int]) -> None:
    if len(keys) != len(counts):
        raise ValueError(f"sketch has {len(keys)} keys but {len(counts)} counts")


# -- schema 2: the wire form -----------------------------------------------------------------


class Numeric(Struct, forbid_unknown_fields=True, array_like=True):
    """A numeric feature over the window: counts in the reference's bins, then moments."""

    counts: Counts
    """Frames per bin of the reference's edges (underflow first, overflow last)."""
    missing: Count = 0
    """Frames without a value (NaN)."""
    n: Count = 0
    """Frames with a value."""
    mean: Real = 0.0
    m2: Real = 0.0
    """Sum of squared deviations from the mean (variance = m2 / (n - 1))."""
    min: Real = 0.0
    max: Real = 0.0


class Sketch(Struct, forbid_unknown_fields=True, array_like=True):
    """A latency sketch (relative accuracy ``accuracy``); quantiles are recomputed from it."""

    n: Count = 0
    zero: Count = 0
    max: Real | None = None
    keys: Annotated[list[KeyDelta], Meta(max_length=MAX_SKETCH_BUCKETS)] = field(
        default_factory=list)
    """Bucket keys as differences: the first key, then each key minus the one before."""
    counts: Annotated[list[Count], Meta(max_length=MAX_SKETCH_BUCKETS)] = field(
        default_factory=list)
    accuracy: Real = 0.01

    def __post_init__(self) -> None:
        _same_length(self.keys, self.counts)


class Anomaly(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Anomaly scores of the window's frames (rate = frames / scored)."""

    frames: Count = 0
    """Frames scoring above the threshold."""
    scored: Count = 0
    threshold: Real | None = None
    score_sum: Real = 0.0
    score_max: Real = 0.0


class FeatureDrift(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The drift statistics of one feature (schema 1: every feature; schema 2: those not
    ``ok``)."""

    effect: Real | None = None
    p: Real | None = None
    p_adjusted: Real | None = None
    status: Severity = "ok"
    streak: Count = 0
    drifted: bool = False
    psi: Real | None = None
    ks: Real | None = None
    ks_p: Real | None = None
    wasserstein: Real | None = None
    mean_shift: Real | None = None
    js: Real | None = None
    n_eff: Real | None = None


class Drift(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The window's drift verdict (schema 2)."""

    severity: Severity = "ok"
    """ok, warning (a significant, sizeable shift) or drift (confirmed)."""
    score: Real = 0.0
    """Largest effect among significant features."""
    detected: bool = False
    """True when severity is drift."""
    insufficient: bool = False
    """Too few monitored frames for a verdict."""
    reasons: Reasons = field(default_factory=list)
    """One sentence per flagged feature, worst first."""
    effects: Annotated[dict[Name, Real], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    """Effect of every judged feature, three significant digits."""
    flagged: Annotated[dict[Name, FeatureDrift], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    """Full statistics of the features whose status is not ``ok``."""


class Summary(Struct, forbid_unknown_fields=True, omit_defaults=True, tag_field="schema",
              tag=SCHEMA):
    """A window summary as published (``edgewatch.summary/2``)."""

    window: Window
    """The window's span."""
    reference_id: Id
    """Id of the reference profile whose bins the histograms use."""
    frames: Frames
    """Frame counters."""
    device: Id = ""
    """Device id (the topic's device level)."""
    boot_id: Id = ""
    """Random id of the agent process start."""
    seq: Seq = 0
    """Per-device message number, strictly increasing across restarts."""
    features: Annotated[dict[Name, Numeric], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    """Numeric features (docs/features.md), in the reference's bins."""
    labels: Annotated[dict[Name, Labels], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    """Categorical features: classes, position."""
    latency: Annotated[dict[Name, Sketch], Meta(max_length=MAX_ITEMS)] = field(
        default_factory=dict)
    """Latency sketch per stage: preprocess_ms, inference_ms, postprocess_ms, total_ms,
    monitor_ms."""
    resources: Resources = field(default_factory=Resources)
    """CPU, memory, disk and temperatures."""
    quality: Faults = field(default_factory=dict)
    """Frames per data-quality fault (docs/alerts.md)."""
    quality_onsets: Onsets = field(default_factory=dict)
    """Time of the first frame showing each fault."""
    anomaly: Anomaly = field(default_factory=Anomaly)
    """Anomalous frames against the reference's threshold."""
    drift: Drift | None = None
    """The drift verdict (absent when the window was not judged)."""
    outbox: OutboxState | None = None
    """The device's outbox when the window closed."""
    historical: bool = False
    """Published long after the window closed (a backlog)."""
    merged_seqs: MergedSeqs | None = None
    """The original seqs this (compacted) summary stands for."""
    loss: Loss | None = None
    """What the outbox merged or dropped since its last report."""


# -- schema 1: the replay line ----------------------------------------------------------------


class NumericV1(Struct, forbid_unknown_fields=True):
    counts: Counts
    missing: Count = 0
    count: Count = 0
    mean: Real = 0.0
    std: Real = 0.0
    m2: Real = 0.0
    min: Real = 0.0
    max: Real = 0.0


class SketchV1(Struct, forbid_unknown_fields=True):
    accuracy: Real = 0.01
    count: Count = 0
    zero: Count = 0
    max: Real | None = None
    keys: Annotated[list[SmallInt], Meta(max_length=MAX_SKETCH_BUCKETS)] = field(
        default_factory=list)
    counts: Annotated[list[Count], Meta(max_length=MAX_SKETCH_BUCKETS)] = field(
        default_factory=list)

    def __post_init__(self) -> None:
        _same_length(self.keys, self.counts)


class LatencyV1(Struct, forbid_unknown_fields=True):
    count: Count = 0
    p50: Real | None = None
    p90: Real | None = None
    p95: Real | None = None
    p99: Real | None = None
    max: Real | None = None
    sketch: SketchV1 = field(default_factory=SketchV1)


class AnomalyV1(Struct, forbid_unknown_fields=True):
    frames: Count = 0
    scored: Count = 0
    rate: Real = 0.0
    threshold: Real | None = None
    score_mean: Real = 0.0
    score_max: Real = 0.0
    score_sum: Real = 0.0


class DriftV1(Struct, forbid_unknown_fields=True):
    detected: bool = False
    severity: Severity = "ok"
    score: Real = 0.0
    reasons: Reasons = field(default_factory=list)
    features: Annotated[dict[Name, FeatureDrift], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    insufficient: bool = False


class SummaryV1(Struct, forbid_unknown_fields=True, tag_field="schema", tag=SCHEMA_V1):
    """A window summary as ``replay`` writes it and as devices published it before schema 2
    (``type`` is ``"summary"`` in replay lines)."""

    window: Window
    reference_id: Id
    frames: Frames
    type: Literal["summary"] = "summary"
    device: Id = ""
    boot_id: Id = ""
    seq: Seq = 0
    features: Annotated[dict[Name, NumericV1], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    labels: Annotated[dict[Name, Labels], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    latency: Annotated[dict[Name, LatencyV1], Meta(max_length=MAX_ITEMS)] = field(
        default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    quality: Faults = field(default_factory=dict)
    quality_onsets: Onsets = field(default_factory=dict)
    anomaly: AnomalyV1 = field(default_factory=AnomalyV1)
    drift: DriftV1 | None = None
    outbox: OutboxState | None = None
    historical: bool = False
    merged_seqs: MergedSeqs | None = None
    loss: Loss | None = None


# -- schema 1 -> schema 2 ---------------------------------------------------------------------


def f32(x: float) -> float:
    """``x`` at float32 precision (about 7 significant digits), as a Python float."""
    if not math.isfinite(x) or abs(x) > 3.4e38:
        return x
    return float(struct.unpack("f", struct.pack("f", x))[0])


def sig3(x: float) -> float:
    """``x`` at three significant digits."""
    return float(f"{x:.3g}")


def _numeric(v: NumericV1) -> Numeric:
    return Numeric(v.counts, v.missing, v.count, f32(v.mean), f32(v.m2), f32(v.min),
                   f32(v.max))


def delta_keys(keys: list[int]) -> list[int]:
    """Sorted sketch keys as the first key, then differences."""
    return [k - p for k, p in zip(keys, [0, *keys[:-1]])]


def undelta_keys(deltas: list[int]) -> list[int]:
    out, acc = [], 0
    for d in deltas:
        acc += d
        out.append(acc)
    return out


def _sketch(v: SketchV1) -> Sketch:
    order = sorted(range(len(v.keys)), key=v.keys.__getitem__)
    keys = [v.keys[i] for i in order]
    return Sketch(v.count, v.zero, None if v.max is None else f32(v.max), delta_keys(keys),
                  [v.counts[i] for i in order], v.accuracy)


def _flagged(v: FeatureDrift) -> FeatureDrift:
    def r(x: float | None) -> float | None:
        return None if x is None else f32(x)

    return FeatureDrift(r(v.effect), r(v.p), r(v.p_adjusted), v.status, v.streak, v.drifted,
                        r(v.psi), r(v.ks), r(v.ks_p), r(v.wasserstein), r(v.mean_shift),
                        r(v.js), r(v.n_eff))


def _drift(d: DriftV1) -> Drift:
    return Drift(
        d.severity, f32(d.score), d.detected, d.insufficient, d.reasons,
        {k: sig3(v.effect) for k, v in d.features.items() if v.effect is not None},
        {k: _flagged(v) for k, v in d.features.items() if v.status != "ok"},
    )


def _anomaly(a: AnomalyV1) -> Anomaly:
    return Anomaly(a.frames, a.scored, None if a.threshold is None else f32(a.threshold),
                   f32(a.score_sum), f32(a.score_max))


def compact(v1: SummaryV1) -> Summary:
    """The schema-2 form of a schema-1 summary (lossless for every merged statistic)."""
    return Summary(
        window=v1.window, reference_id=v1.reference_id, frames=v1.frames, device=v1.device,
        boot_id=v1.boot_id, seq=v1.seq,
        features={k: _numeric(v) for k, v in v1.features.items()},
        labels=v1.labels,
        latency={k: _sketch(v.sketch) for k, v in v1.latency.items()},
        resources=v1.resources, quality=v1.quality, quality_onsets=v1.quality_onsets,
        anomaly=_anomaly(v1.anomaly), drift=None if v1.drift is None else _drift(v1.drift),
        outbox=v1.outbox, historical=v1.historical, merged_seqs=v1.merged_seqs, loss=v1.loss,
    )
