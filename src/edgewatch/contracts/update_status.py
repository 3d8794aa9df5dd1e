"""A model update's lifecycle on one device (``edgewatch.update_status/1``): published
retained on ``<root>/<fleet>/<device>/update_status`` at every state change, so the latest
one is what ``edgewatch model status`` reads."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from edgewatch.contracts.bounds import MAX_ITEMS, Count, Digest, Id, Name, Real, Text, Time

SCHEMA = "edgewatch.update_status/1"

UpdateState = Literal["received", "verifying", "shadow", "committed", "soaking", "done",
                      "rolled_back", "rejected"]
STATES: tuple[str, ...] = ("received", "verifying", "shadow", "committed", "soaking", "done",
                           "rolled_back", "rejected")
"""Every state, in lifecycle order; ``done``, ``rolled_back`` and ``rejected`` are final."""
FINAL_STATES = ("done", "rolled_back", "rejected")


class Gate(Struct, forbid_unknown_fields=True, frozen=True):
    """One gate the candidate was judged on (shadow) or watched against (soak)."""

    name: Name
    """latency_ratio, agreement, confidence_ratio, score_shift, error_rate, output_ratio."""
    value: Real
    limit: Real
    passed: bool


class UpdateStatus(Struct, forbid_unknown_fields=True, omit_defaults=True, tag_field="schema",
                   tag=SCHEMA):
    """Where an update is in its lifecycle, and why it ended where it did."""

    device: Id
    """Device id."""
    update_id: Id
    """The push's id."""
    state: UpdateState
    """received, verifying, shadow, committed, soaking, done, rolled_back or rejected."""
    time: Time
    """When the state was entered (device clock)."""
    model_sha256: Digest
    """The candidate model."""
    running_sha256: Digest = ""
    """The model the device runs now."""
    previous_sha256: Digest = ""
    """The model kept for rollback (after a commit)."""
    version: Id = ""
    """The candidate's directory in the versioned model directory (after a commit)."""
    reason: Text = ""
    """Why it was rejected or rolled back (one line per failed gate, '; ' between)."""
    gates: Annotated[list[Gate], Meta(max_length=MAX_ITEMS)] = []
    """The shadow's gates (after the verdict), then the soak's checks."""
    shadow_frames: Count = 0
    """Frames compared in shadow."""
    soak_frames: Count = 0
    """Frames the committed model ran during its soak."""
