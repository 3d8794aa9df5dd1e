"""The reference profile: what the model's inputs and outputs looked like on known-good data.

It fixes the histogram edges every window is counted against, and keeps the reference's
own histograms, moments and frame-to-frame autocorrelation for the drift decisions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from edgewatch import FEATURE_SET_VERSION
from edgewatch.agent.measure.anomaly import AnomalyModel, fit
from edgewatch.agent.measure.frame import FrameMeasurement
from edgewatch.agent.window.scales import min_scale
from edgewatch.contracts import Reference, Rejected, codec
from edgewatch.contracts.digest import sha256
from edgewatch.contracts.reference import SCHEMA
from edgewatch.errors import ProfileError, ProfileMismatch, StatsError
from edgewatch.stats import BinnedHistogram, CategoricalCounts, Moments, edges_from_values


@dataclasses.dataclass
class NumericReference:
    """One numeric feature in the reference."""

    hist: BinnedHistogram
    moments: Moments
    per_frame: bool
    """True for one-value-per-frame features, False for per-detection ones (box_area)."""
    lag1_autocorr: float
    """Lag-1 autocorrelation of the per-frame series (for per-detection features: of the
    per-frame mean over the frame's detections)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hist": self.hist.to_dict(), "moments": self.moments.to_dict(),
            "per_frame": self.per_frame, "lag1_autocorr": self.lag1_autocorr,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericReference:
        return cls(BinnedHistogram.from_dict(d["hist"]), Moments.from_dict(d["moments"]),
                   bool(d["per_frame"]), float(d["lag1_autocorr"]))


@dataclasses.dataclass
class ReferenceProfile:
    """Bin edges, histograms and summary statistics per feature, plus provenance."""

    model_sha256: str
    model_name: str
    adapter: str
    feature_set_version: str
    analysis_width: int
    frames: int
    source: str
    created: float
    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalCounts]
    anomaly: AnomalyModel | None = None
    frame_interval: float = 0.0
    """Median seconds between consecutive reference frames (0: unknown), the time step of
    each feature's ``lag1_autocorr``."""
    samples: dict[str, int] = dataclasses.field(default_factory=dict)
    """Samples per feature: finite values, the detections of one frame counted once (see
    ``sample_size``)."""
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)
    """Features the reference could not learn, with why: they do not vote on drift."""
    unusable: dict[str, int] = dataclasses.field(default_factory=dict, compare=False,
                                                 repr=False)
    """Frames left out when building, by cause (not saved: reported by ``profile build``)."""

    @property
    def id(self) -> str:
        """Content hash (16 hex digits) identifying this profile in summaries.

        The creation time is left out: the same frames measured with the same model and
        settings give the same id whenever the profile is built. A hash of the values, it
        changes with their last digits: another processor, or another build of onnxruntime,
        OpenCV or numpy, can round a few statistics differently and so give another id."""
        content = {k: v for k, v in self._body().items() if k != "created"}
        body = json.dumps(content, sort_keys=True).encode()
        return sha256(body).hexdigest()[:16]

    def _body(self) -> dict[str, Any]:
        return {
            "model_sha256": self.model_sha256, "model_name": self.model_name,
            "adapter": self.adapter, "feature_set_version": self.feature_set_version,
            "analysis_width": self.analysis_width, "frames": self.frames, "source": self.source,
            "created": self.created,
            "numeric": {k: v.to_dict() for k, v in sorted(self.numeric.items())},
            "categorical": {k: v.to_dict() for k, v in sorted(self.categorical.items())},
            "anomaly": self.anomaly.to_dict() if self.anomaly is not None else None,
        } | ({"frame_interval": self.frame_interval} if self.frame_interval > 0 else {}) \
          | ({"samples": dict(sorted(self.samples.items()))} if self.samples else {}) \
          | ({"excluded": dict(sorted(self.excluded.items()))} if self.excluded else {})

    def sample_size(self, name: str) -> int:
        """Samples of a feature in the reference: its finite values, at most one per frame
        that had any (a frame's detections are not independent of each other). Profiles
        written before ``samples`` was recorded: the values, at most one per frame."""
        if name in self.samples:
            return self.samples[name]
        if name in self.numeric:
            return min(self.numeric[name].hist.total, self.frames)
        if name in self.categorical:
            return min(self.categorical[name].total, self.frames)
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "id": self.id, **self._body()}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    def to_contract(self, device: str = "") -> Reference:
        """The profile as its contract type (the retained ``reference`` message when
        ``device`` is set)."""
        try:
            return msgspec.convert({**self.to_dict(), "device": device}, Reference)
        except msgspec.ValidationError as exc:
            raise ProfileError(f"reference profile {self.id} is out of its contract: {exc}"
                               ) from exc

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceProfile:
        """A profile from its JSON form, checked against the contract first."""
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            schema = d.get("schema") if isinstance(d, dict) else None
            raise ProfileError(f"not an edgewatch reference profile (schema {schema!r})")
        try:
            contract = codec.decode_as(Reference, msgspec.json.encode(d), codec.JSON)
        except (Rejected, msgspec.EncodeError, OverflowError) as exc:
            raise ProfileError(f"reference profile is damaged: {exc}") from exc
        return cls.from_contract(contract)

    @classmethod
    def from_contract(cls, ref: Reference) -> ReferenceProfile:
        """A profile from a decoded ``edgewatch.reference/1`` message or file."""
        d = msgspec.to_builtins(ref)
        try:
            return cls(
                d["model_sha256"], d["model_name"], d["adapter"], d["feature_set_version"],
                int(d["analysis_width"]), int(d["frames"]), d["source"], float(d["created"]),
                {k: NumericReference.from_dict(v) for k, v in d["numeric"].items()},
                {k: CategoricalCounts.from_dict(v) for k, v in d["categorical"].items()},
                AnomalyModel.from_dict(d["anomaly"]) if d.get("anomaly") else None,
                float(d.get("frame_interval", 0.0)),
                {k: int(v) for k, v in d.get("samples", {}).items()},
                {k: str(v) for k, v in d.get("excluded", {}).items()},
            )
        except (KeyError, TypeError, ValueError, StatsError) as exc:
            raise ProfileError(f"reference profile is damaged: {exc!r}") from exc

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        p = Path(path)
        if not str(path):
            raise ProfileError("no reference profile given (reference.path or --reference)")
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ProfileError(f"cannot read reference profile {p}: {exc.strerror}") from exc
        try:  # the message type: a "schema" field is required
            contract = codec.decode_as(codec.DEVICE_MESSAGES["reference"], raw, codec.JSON)
            if not isinstance(contract, Reference):
                raise Rejected("schema", f"schema {getattr(contract, 'schema', '?')!r}")
        except Rejected as exc:
            if exc.reason == "encoding":
                raise ProfileError(f"reference profile {p} is not valid JSON: {exc.detail}"
                                   ) from None
            if exc.reason == "schema":
                raise ProfileError(f"{p} is not an edgewatch reference profile ({exc.detail})"
                                   ) from None
            raise ProfileError(f"reference profile {p} is damaged: {exc}") from None
        return cls.from_contract(contract)

    def check_compatible(self, model_sha256: str, adapter: str, analysis_width: int) -> None:
        """Raise ProfileMismatch unless this profile was built for the same set-up."""
        if self.feature_set_version != FEATURE_SET_VERSION:
            raise ProfileMismatch(
                f"reference profile uses feature set {self.feature_set_version}, this agent "
                f"computes feature set {FEATURE_SET_VERSION}: rebuild it with 'profile build'"
            )
        if self.model_sha256 != model_sha256:
            raise ProfileMismatch(
                f"reference profile was built for model {self.model_name} "
                f"(sha256 {self.model_sha256[:12]}...), the configured model has sha256 "
                f"{model_sha256[:12]}...: rebuild it with 'profile build'"
            )
        if self.adapter != adapter:
            raise ProfileMismatch(
                f"reference profile was built with adapter '{self.adapter}', config uses "
                f"'{adapter}'"
            )
        if self.analysis_width != analysis_width:
            raise ProfileMismatch(
                f"reference profile was built with features.analysis_width = "
                f"{self.analysis_width}, config has {analysis_width}"
            )


def lag1_autocorrelation(series: np.ndarray) -> float:
    """Pearson correlation of consecutive values; 0 when undefined."""
    x = series[np.isfinite(series)]
    a, b = x[:-1], x[1:]
    if x.size < 3 or float(a.std()) == 0.0 or float(b.std()) == 0.0:
        return 0.0
    r = float(np.corrcoef(a, b)[0, 1])
    return r if math.isfinite(r) else 0.0


class ReferenceBuilder:
    """Collects frame measurements and turns them into a ReferenceProfile."""

    def __init__(self, bins: int = 20) -> None:
        self.bins = bins
        self._values: dict[str, list[np.ndarray]] = {}
        self._per_frame: dict[str, bool] = {}
        self._frame_means: dict[str, list[float]] = {}
        self._labels: dict[str, CategoricalCounts] = {}
        self._times: list[float] = []
        self._frames_with: dict[str, int] = {}
        """Frames with at least one finite value (or label) per feature."""
        self.nonfinite: dict[str, int] = {}
        """NaN or infinite values per feature: counted, then left out."""
        self.frames = 0

    def add(self, m: FrameMeasurement) -> None:
        self.frames += 1
        self._times.append(m.timestamp)
        for name, value in m.numeric.items():
            arr = np.atleast_1d(np.asarray(value, np.float64))
            finite = np.isfinite(arr)
            n_finite = int(np.count_nonzero(finite))
            if n_finite < arr.size:  # counted and left out: no NaN reaches a statistic
                self.nonfinite[name] = self.nonfinite.get(name, 0) + arr.size - n_finite
                arr = np.where(finite, arr, np.nan)
            self._frames_with[name] = self._frames_with.get(name, 0) + (n_finite > 0)
            self._values.setdefault(name, []).append(arr)
            if self._per_frame.setdefault(name, np.ndim(value) == 0) is False:
                mean = float(arr[finite].mean()) if n_finite else math.nan
                self._frame_means.setdefault(name, []).append(mean)
        for name, labels in m.labels.items():
            self._labels.setdefault(name, CategoricalCounts()).update(labels)
            self._frames_with[name] = self._frames_with.get(name, 0) + (len(labels) > 0)

    def extend(self, measurements: Iterable[FrameMeasurement]) -> None:
        for m in measurements:
            self.add(m)

    def build(self, *, model_sha256: str, model_name: str, adapter: str,
              analysis_width: int, source: str, created: float | None = None,
              min_samples: int = 1) -> ReferenceProfile:
        """The profile; features with fewer than ``min_samples`` samples (see
        ``ReferenceProfile.sample_size``) are listed in its ``excluded``."""
        if self.frames == 0:
            raise ProfileError("no frames were measured: cannot build a reference profile")
        with np.errstate(all="ignore"):  # non-finite values are already left out
            numeric = self._numeric()
            anomaly = self._anomaly_model()
        samples = {name: self._samples(name) for name in [*numeric, *self._labels]}
        excluded = {name: reason for name in samples
                    if (reason := self._exclusion(name, samples[name], min_samples))}
        return ReferenceProfile(
            model_sha256, model_name, adapter, FEATURE_SET_VERSION, analysis_width,
            self.frames, source, time.time() if created is None else created,
            numeric, dict(sorted(self._labels.items())), anomaly,
            self._frame_interval(), dict(sorted(samples.items())), excluded,
        )

    def _samples(self, name: str) -> int:
        values = self._labels[name].total if name in self._labels \
            else int(sum(np.count_nonzero(np.isfinite(c)) for c in self._values[name]))
        return min(values, self._frames_with.get(name, 0))

    def _exclusion(self, name: str, samples: int, min_samples: int) -> str:
        """Why the reference cannot judge this feature ("" when it can)."""
        bad = self.nonfinite.get(name, 0)
        if samples == 0:
            what = "labels" if name in self._labels else "finite values"
            return (f"no {what} in {self.frames} frames"
                    + (f" ({bad} NaN or infinite values)" if bad else ""))
        if samples < min_samples:
            return (f"only {samples} samples in {self.frames} frames (at least {min_samples} "
                    f"needed, drift.min_reference_samples)")
        return ""

    def _numeric(self) -> dict[str, NumericReference]:
        numeric = {}
        for name, chunks in sorted(self._values.items()):
            values = np.concatenate(chunks)
            try:
                edges = edges_from_values(values, self.bins)
            except StatsError:
                edges = np.array([0.0, np.nextafter(0.0, 1.0)])  # never observed: any value drifts
            hist = BinnedHistogram(edges)
            hist.update(values)
            moments = Moments()
            moments.update(values)
            per_frame = self._per_frame[name]
            series = values if per_frame else np.asarray(self._frame_means.get(name, []))
            ac = lag1_autocorrelation(series)
            numeric[name] = NumericReference(hist, moments, per_frame, ac)
        return numeric

    def _frame_interval(self) -> float:
        steps = np.diff(np.asarray(self._times, np.float64))
        steps = steps[np.isfinite(steps) & (steps > 0)]
        return float(np.median(steps)) if steps.size else 0.0

    def _anomaly_model(self) -> AnomalyModel | None:
        """Fit on the per-frame features that were measured on every frame."""
        names = [n for n, chunks in sorted(self._values.items())
                 if self._per_frame[n] and len(chunks) == self.frames]
        if not names:
            return None
        matrix = np.column_stack([np.concatenate(self._values[n]) for n in names])
        rows = np.all(np.isfinite(matrix), axis=1)
        complete = [n for n, ok in zip(names, np.all(np.isfinite(matrix), axis=0)) if ok]
        if len(complete) < len(names):  # drop features that are sometimes missing
            keep = [names.index(n) for n in complete]
            matrix, names = matrix[:, keep], complete
            rows = np.all(np.isfinite(matrix), axis=1)
        floors = np.array([min_scale(n) for n in names])
        return fit(names, matrix[rows], floors) if names else None
