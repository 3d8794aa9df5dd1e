"""The retrain advisory (``edgewatch.advisory/1``): what the collector concludes from a
device's recent windows -- retrain the model, clean or repair the camera, keep watching --
with the evidence (docs/advisory.md). Published by the collector, retained, on
``<root>/<fleet>/<device>/advisory`` (docs/mqtt.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from edgewatch.contracts.bounds import (
    MAX_FEATURES,
    MAX_ITEMS,
    MAX_REASONS,
    Count,
    Digest,
    Id,
    Name,
    Real,
    Text,
    Time,
    Unit,
)

SCHEMA = "edgewatch.advisory/1"
Action = Literal["none", "watch", "clean", "retrain", "insufficient"]
ACTIONS: tuple[str, ...] = ("none", "watch", "clean", "retrain", "insufficient")
"""What an advisory asks for: nothing, keep watching (drift too short, or the model's
confidence held), clean or repair the camera (quality faults explain the drift), retrain the
model (a persistent change of the world with clean quality and a falling estimate), or
nothing can be said (too little data)."""


class FeatureEvidence(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One feature that drifted during the current drift run."""

    feature: Name
    windows: Count = 0
    """Windows of the run in which the feature's status was drift."""
    effect: Real | None = None
    """Its largest effect in the run (reference SDs; JS distance for label mixes)."""
    side: Literal["input", "output"] = "input"
    """Input (image) feature or output (model) feature."""


class Estimate(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The label-free performance estimate over the run's windows (docs/advisory.md)."""

    feature: Name
    """The confidence feature: score_max (detectors) or top1_prob (classifiers)."""
    threshold: Real
    """The ATC threshold, fixed on the reference (a bin edge of the feature)."""
    reference_share: Unit
    """Share of the reference's frames at or above the threshold (about the assumed
    accuracy)."""
    share: Unit
    """Share of the windows' frames at or above the threshold."""
    ratio: Real
    """share / reference_share: 1 when as confident as on the reference."""
    estimate: Unit
    """The assumed reference accuracy times ratio (at most 1)."""
    frames: Count = 0
    """Frames with a value of the confidence feature in the windows."""
    near_threshold_ratio: Real | None = None
    """Near-threshold candidates per frame, windows over reference (detectors)."""
    class_js: Unit | None = None
    """Jensen-Shannon distance (base 2) of the class mix from the reference's."""


class FleetEvidence(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How many devices running the same model (and the same reference) show it too."""

    model_devices: Count = 0
    """Devices whose current reference is for this model (this one included)."""
    model_drifting: Count = 0
    """Of those, devices in a drift run with clean quality (watch or retrain)."""
    model_retrain: Count = 0
    """Of those, devices advised to retrain."""
    reference_devices: Count = 0
    """Devices counting against the same reference (this one included)."""
    reference_drifting: Count = 0


class Advisory(Struct, forbid_unknown_fields=True, omit_defaults=True, tag_field="schema",
               tag=SCHEMA):
    """The collector's advice for one device: retrain, clean the camera, watch, or nothing,
    with the evidence."""

    device: Id
    """Device id."""
    fleet: Id
    """The device's fleet."""
    action: Action
    """none, watch, clean, retrain or insufficient."""
    time: Time
    """When the collector computed it."""
    summary: Text = ""
    """One sentence for people."""
    reasons: Annotated[list[Text], Meta(max_length=MAX_REASONS)] = field(default_factory=list)
    """The rule's steps that decided, one sentence each."""
    reference_id: Id = ""
    """The reference the windows were counted against."""
    model_sha256: Digest = ""
    model_name: Text = ""
    since: Time | None = None
    """Start of the first window of the current drift run."""
    windows: Count = 0
    """Windows in the current drift run (merged windows counted as they were)."""
    span_s: Real = 0.0
    """Seconds from the run's first window start to its last window end."""
    features: Annotated[list[FeatureEvidence], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=list)
    """The features that drifted in the run, most windows first."""
    quality: Annotated[dict[Name, Unit], Meta(max_length=MAX_ITEMS)] = field(
        default_factory=dict)
    """Share of monitored frames per camera fault over the judged windows."""
    estimate: Estimate | None = None
    """The label-free performance estimate (absent when the reference cannot give one)."""
    fleet_evidence: FleetEvidence = field(default_factory=FleetEvidence)
    """Devices with the same model and reference showing it."""
    evidence_frames: Count = 0
    """Evidence frames the device captured during the run (0 until summaries carry it)."""
    evidence_ids: Annotated[list[Id], Meta(max_length=MAX_ITEMS)] = field(
        default_factory=list)
    """Ids of those evidence frames, when the summaries name them."""
