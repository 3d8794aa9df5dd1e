"""The replay line, ``edgewatch.summary/1``, and :func:`compact`, its conversion to the wire form.

Schema 1 is what ``replay`` writes and what devices before the compact encoding publish: every
statistic spelled out, 16 significant digits. It shares its parts without a schema-1 variant
(window, frames, labels, resources, outbox, per-feature drift) with schema 2,
:mod:`edgewatch.contracts.summary`. :func:`compact` turns a schema-1 record into schema 2; the
collector stores schema 2 only.

>>> v1 = SummaryV1(Window(0.0, 60.0), "ref-1", Frames(seen=3, monitored=3),
...                latency={"total_ms": LatencyV1(2, sketch=SketchV1(count=2, keys=[9, 7],
...                                                                   counts=[1, 1]))})
>>> s = compact(v1)
>>> s.frames.monitored, s.latency["total_ms"].keys        # sorted, then as differences
(3, [7, 2])
"""

from __future__ import annotations

import math
import struct
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from edgewatch.contracts.bounds import (
    MAX_FEATURES,
    MAX_ITEMS,
    MAX_SKETCH_BUCKETS,
    Count,
    Id,
    Name,
    Real,
    Seq,
    SmallInt,
    Text,
)
from edgewatch.contracts.envelope import Loss
from edgewatch.contracts.summary import (
    Anomaly,
    Counts,
    Drift,
    Faults,
    FeatureDrift,
    Frames,
    Labels,
    MergedSeqs,
    Numeric,
    Onsets,
    OutboxState,
    Reasons,
    Resources,
    Severity,
    Sketch,
    Summary,
    Window,
    check_same_length,
    delta_keys,
)

SCHEMA_V1 = "edgewatch.summary/1"


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
        check_same_length(self.keys, self.counts)


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
    not_voting: Annotated[dict[Name, Text], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)


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
    context: Name | None = None


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
        not_voting=d.not_voting,
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
        context=v1.context,
    )
