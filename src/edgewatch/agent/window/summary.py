"""The window summary: a typed, mergeable payload (JSON line, MQTT message, stored row).

Two summaries of consecutive windows with the same reference merge exactly: histogram and
label counts add, moments and latency sketches merge, frame counters add.

Two forms leave the process: the replay line (``edgewatch.summary/1``, defined in
:mod:`edgewatch.contracts.summary_v1`, :meth:`WindowSummary.to_dict`) and the compact wire
form (``edgewatch.summary/2``, :mod:`edgewatch.contracts.summary`,
:meth:`WindowSummary.to_wire`). Both read back into a mergeable summary
(:meth:`WindowSummary.from_dict`, :meth:`WindowSummary.from_wire`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgspec

from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.contracts import summary as contract
from edgewatch.contracts.summary_v1 import SCHEMA_V1, SummaryV1, compact
from edgewatch.errors import StatsError
from edgewatch.stats import BinnedHistogram, CategoricalCounts, LogSketch, Moments

LATENCY_STAGES = ("preprocess_ms", "inference_ms", "postprocess_ms", "total_ms", "monitor_ms")
QUANTILES = (0.5, 0.9, 0.95, 0.99)


@dataclasses.dataclass
class FrameCounts:
    """What happened to the frames of a window."""

    seen: int = 0
    """Frames delivered by the source (decode failures included)."""
    monitored: int = 0
    """Frames measured by the monitor."""
    dropped: int = 0
    """Frames not measured because the monitor queue was full."""
    sampled_out: int = 0
    """Frames skipped on purpose by features.every_nth or features.max_fps."""
    decode_errors: int = 0
    """Frames the source could not decode."""
    nonfinite_outputs: int = 0
    """Frames whose model outputs held NaN or Inf."""
    inference_errors: int = 0
    """Frames on which onnxruntime raised."""

    def merge(self, other: FrameCounts) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameCounts:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in d.items() if k in names})


@dataclasses.dataclass
class NumericWindow:
    """A numeric feature over one window: counts in the reference's bins and moments."""

    hist: BinnedHistogram
    moments: Moments

    def merge(self, other: NumericWindow) -> None:
        self.hist.merge(other.hist)
        self.moments.merge(other.moments)

    def to_dict(self) -> dict[str, Any]:
        return {**self.hist.to_dict(with_edges=False), **self.moments.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], edges: Any) -> NumericWindow:
        return cls(BinnedHistogram.from_dict(d, edges), Moments.from_dict(d))


@dataclasses.dataclass
class AnomalyWindow:
    """Anomaly scores of a window's frames against the reference threshold."""

    threshold: float = float("nan")
    scored: int = 0
    anomalous: int = 0
    total: float = 0.0
    max: float = 0.0

    def add(self, score: float) -> None:
        if math.isnan(score):  # frame without a score
            return
        self.scored += 1
        self.total += score
        self.max = max(self.max, score)
        if score > self.threshold:
            self.anomalous += 1

    def merge(self, other: AnomalyWindow) -> None:
        self.scored += other.scored
        self.anomalous += other.anomalous
        self.total += other.total
        self.max = max(self.max, other.max)

    @property
    def rate(self) -> float:
        return self.anomalous / self.scored if self.scored else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.anomalous, "scored": self.scored, "rate": self.rate,
            "threshold": self.threshold if self.threshold == self.threshold else None,
            "score_mean": self.total / self.scored if self.scored else 0.0,
            "score_max": self.max, "score_sum": self.total,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnomalyWindow:
        t = d.get("threshold")
        return cls(float("nan") if t is None else float(t), int(d["scored"]),
                   int(d["frames"]), float(d["score_sum"]), float(d["score_max"]))


def _merge_latency(mine: dict[str, LogSketch], theirs: dict[str, LogSketch]) -> None:
    for stage, sketch in theirs.items():
        if stage in mine:
            mine[stage].merge(sketch)
        else:
            mine[stage] = LogSketch.from_dict(sketch.to_dict())


@dataclasses.dataclass
class WindowSummary:
    """Everything measured over one window."""

    start: float
    end: float
    reference_id: str
    frames: FrameCounts
    numeric: dict[str, NumericWindow]
    categorical: dict[str, CategoricalCounts]
    latency: dict[str, LogSketch]
    resources: dict[str, Any] = dataclasses.field(default_factory=dict)
    quality: dict[str, int] = dataclasses.field(default_factory=dict)
    """Frames per data-quality fault."""
    quality_onsets: dict[str, float] = dataclasses.field(default_factory=dict)
    """Timestamp of the first frame of the window showing each fault."""
    anomaly: AnomalyWindow = dataclasses.field(default_factory=AnomalyWindow)
    windows: int = 1
    """How many original windows were merged into this one."""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Verdicts attached after aggregation (drift, quality, anomaly), serialised as-is."""

    @classmethod
    def empty(cls, reference: ReferenceProfile, start: float, end: float) -> WindowSummary:
        numeric = {
            name: NumericWindow(ref.hist.empty_like(), Moments())
            for name, ref in reference.numeric.items()
        }
        categorical = {name: CategoricalCounts() for name in reference.categorical}
        latency = {stage: LogSketch() for stage in LATENCY_STAGES}
        threshold = reference.anomaly.threshold if reference.anomaly else float("nan")
        return cls(start, end, reference.id, FrameCounts(), numeric, categorical, latency,
                   anomaly=AnomalyWindow(threshold))

    def merge(self, other: WindowSummary) -> None:
        """Absorb a later window in place (same reference required)."""
        if other.reference_id != self.reference_id:
            raise StatsError("cannot merge windows counted against different references")
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        self.frames.merge(other.frames)
        for name, feat in other.numeric.items():
            if name in self.numeric:
                self.numeric[name].merge(feat)
            else:
                self.numeric[name] = NumericWindow(feat.hist.copy(), Moments() + feat.moments)
        for name, counts in other.categorical.items():
            self.categorical.setdefault(name, CategoricalCounts()).merge(counts)
        _merge_latency(self.latency, other.latency)
        self.resources = other.resources or self.resources
        for fault, n in other.quality.items():
            self.quality[fault] = self.quality.get(fault, 0) + n
        for fault, t in other.quality_onsets.items():
            self.quality_onsets[fault] = min(t, self.quality_onsets.get(fault, t))
        self.anomaly.merge(other.anomaly)
        self.windows += other.windows

    def latency_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for stage, sketch in self.latency.items():
            entry: dict[str, Any] = {"count": sketch.count}
            if sketch.count:
                entry.update({f"p{round(q * 100)}": sketch.quantile(q) for q in QUANTILES})
                entry["max"] = sketch.max
            entry["sketch"] = sketch.to_dict()
            out[stage] = entry
        return out

    def to_dict(self) -> dict[str, Any]:
        """The replay line (``edgewatch.summary/1``), without transport fields such as seq."""
        return {
            "type": "summary",
            "schema": SCHEMA_V1,
            "window": {"start": self.start, "end": self.end, "windows": self.windows},
            "reference_id": self.reference_id,
            "frames": self.frames.to_dict(),
            "features": {k: v.to_dict() for k, v in sorted(self.numeric.items())},
            "labels": {k: v.to_dict() for k, v in sorted(self.categorical.items())},
            "latency": self.latency_dict(),
            "resources": self.resources,
            "quality": dict(sorted(self.quality.items())),
            "quality_onsets": dict(sorted(self.quality_onsets.items())),
            "anomaly": self.anomaly.to_dict(),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], reference: ReferenceProfile) -> WindowSummary:
        """Rebuild a summary from its JSON form; edges come from the reference."""
        if d.get("schema") != SCHEMA_V1:
            raise StatsError(f"unsupported summary schema {d.get('schema')!r}")
        numeric = {
            name: NumericWindow.from_dict(v, reference.numeric[name].hist.edges)
            for name, v in d["features"].items() if name in reference.numeric
        }
        known = {"type", "schema", "window", "reference_id", "frames", "features", "labels",
                 "latency", "resources", "quality", "quality_onsets", "anomaly"}
        return cls(
            start=float(d["window"]["start"]), end=float(d["window"]["end"]),
            reference_id=d["reference_id"], frames=FrameCounts.from_dict(d["frames"]),
            numeric=numeric,
            categorical={k: CategoricalCounts.from_dict(v) for k, v in d["labels"].items()},
            latency={k: LogSketch.from_dict(v["sketch"]) for k, v in d["latency"].items()},
            resources=dict(d.get("resources", {})),
            quality={k: int(v) for k, v in d.get("quality", {}).items()},
            quality_onsets={k: float(v) for k, v in d.get("quality_onsets", {}).items()},
            anomaly=AnomalyWindow.from_dict(d["anomaly"]) if "anomaly" in d else AnomalyWindow(),
            windows=int(d["window"].get("windows", 1)),
            extra={k: v for k, v in d.items() if k not in known},
        )

    def to_v1(self) -> SummaryV1:
        """The replay line as its contract type (validated: every bound holds)."""
        try:
            return msgspec.convert(self.to_dict(), SummaryV1)
        except msgspec.ValidationError as exc:
            raise StatsError(f"window summary out of its contract: {exc}") from exc

    def to_wire(self) -> contract.Summary:
        """The compact wire form (``edgewatch.summary/2``), without transport fields."""
        return compact(self.to_v1())

    @classmethod
    def from_wire(cls, s: contract.Summary, reference: ReferenceProfile) -> WindowSummary:
        """Rebuild a mergeable summary from its wire form; edges come from the reference.

        The drift verdict and outbox state go to ``extra`` in the replay-line shape (features
        judged ``ok`` keep only their effect), so ``to_wire`` gives the same message back."""
        if s.reference_id != reference.id:
            raise StatsError(f"summary counted against reference {s.reference_id!r}, "
                             f"not {reference.id!r}")
        numeric = {
            name: NumericWindow(
                BinnedHistogram(reference.numeric[name].hist.edges, v.counts, v.missing),
                Moments(v.n, v.mean, v.m2, v.min, v.max) if v.n else Moments())
            for name, v in s.features.items() if name in reference.numeric
        }
        extra: dict[str, Any] = {}
        if s.drift is not None:
            extra["drift"] = _drift_v1(s.drift)
        if s.outbox is not None:
            extra["outbox"] = msgspec.to_builtins(s.outbox)
        if s.context is not None:
            extra["context"] = s.context
        a = s.anomaly
        return cls(
            start=s.window.start, end=s.window.end, reference_id=s.reference_id,
            frames=FrameCounts(**msgspec.structs.asdict(s.frames)), numeric=numeric,
            categorical={k: CategoricalCounts(v.counts, v.missing) for k, v in s.labels.items()},
            latency={k: _sketch(v) for k, v in s.latency.items()},
            resources=msgspec.to_builtins(s.resources), quality=dict(s.quality),
            quality_onsets=dict(s.quality_onsets),
            anomaly=AnomalyWindow(float("nan") if a.threshold is None else a.threshold,
                                  a.scored, a.frames, a.score_sum, a.score_max),
            windows=s.window.windows, extra=extra,
        )


def _sketch(v: contract.Sketch) -> LogSketch:
    if len(v.keys) != len(v.counts):
        raise StatsError("sketch keys and counts differ in length")
    out = LogSketch(v.accuracy)
    out.buckets.update(dict(zip(contract.undelta_keys(v.keys), v.counts)))
    out.zero, out.count = v.zero, v.n
    out.max = -math.inf if v.max is None else v.max
    return out


def _drift_v1(d: contract.Drift) -> dict[str, Any]:
    """A schema-2 drift verdict in the replay-line shape (``features``: the flagged ones in
    full, the others with their effect)."""
    features = {name: {"effect": effect, "status": "ok"} for name, effect in d.effects.items()}
    features.update({name: msgspec.to_builtins(f) for name, f in d.flagged.items()})
    return {"detected": d.detected, "severity": d.severity, "score": d.score,
            "reasons": list(d.reasons), "features": dict(sorted(features.items())),
            "insufficient": d.insufficient,
            **({"not_voting": dict(d.not_voting)} if d.not_voting else {})}
