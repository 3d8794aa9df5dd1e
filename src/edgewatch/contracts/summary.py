"""The window summary: the compact wire form (``edgewatch.summary/2``) and the parts it shares
with the replay line (``edgewatch.summary/1``, in :mod:`edgewatch.contracts.summary_v1`).

Schema 1 is what ``replay`` writes and what devices before the compact encoding publish: every
statistic spelled out, 16 significant digits. Schema 2 is what devices publish now: the same
window with what the collector can recompute left out (standard deviations, latency
percentiles, anomaly rate and mean), floats at the precision that matters (float32, effects at
three significant digits), latency sketch keys as differences, and the full per-feature drift
details only for features that are not ``ok``. :func:`~edgewatch.contracts.summary_v1.compact`
turns a schema-1 record into schema 2; the collector stores schema 2 only.
"""

from __future__ import annotations

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
    Text,
    Time,
)
from edgewatch.contracts.envelope import Loss

SCHEMA = "edgewatch.summary/2"
Severity = Literal["ok", "warning", "drift"]
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


def check_same_length(keys: list[int], counts: list[int]) -> None:
    """Raise ValueError unless a sketch has one count per key (both schemas' sketches)."""
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
        check_same_length(self.keys, self.counts)


def delta_keys(keys: list[int]) -> list[int]:
    """Sorted sketch keys as the first key, then differences."""
    return [k - p for k, p in zip(keys, [0, *keys[:-1]])]


def undelta_keys(deltas: list[int]) -> list[int]:
    out, acc = [], 0
    for d in deltas:
        acc += d
        out.append(acc)
    return out


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
    not_voting: Annotated[dict[Name, Text], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    """Features left out of this verdict, with why (too few samples in the reference or the
    window, docs/drift.md)."""


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
    context: Name | None = None
    """The reference context the window was judged in (``[[reference.contexts]]``: e.g.
    "night"; "default" for the default reference); absent when no contexts are configured."""
