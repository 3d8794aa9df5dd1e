"""The device's retained status (``edgewatch.status/1``): birth message with the manifest,
last will, clean shutdown."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from edgewatch.contracts.bounds import MAX_ITEMS, Digest, Id, Name, Real, Text, Time

SCHEMA = "edgewatch.status/1"


Metrics = Annotated[dict[Name, Real], Meta(max_length=MAX_ITEMS)]
"""Evaluation metrics by name (``mAP`` -> 0.41)."""


class Manifest(Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """What is running on the device, announced in every birth message. The deployment
    fields (``model_version`` to ``notes``, the agent's ``[deployment]`` section) are
    omitted when empty; births of agents without them decode with their defaults."""

    device: Id
    fleet: Id
    boot_id: Id
    started: Time
    model_name: Text
    model_sha256: Digest
    adapter: Name
    reference_id: Id
    config_sha256: Digest
    agent_version: Id = ""
    feature_set_version: Id = ""
    model_version: Id = ""
    """The model's version as its team names it."""
    owner: Text = ""
    """Who answers for the deployment."""
    training_data: Text = ""
    """What the model was trained on."""
    evaluation: Metrics | Text = field(default_factory=dict)
    """Evaluation metrics by name, or a sentence (where the evaluation report is)."""
    notes: Text = ""
    """Anything else the maintainers need."""


class Status(Struct, forbid_unknown_fields=True, omit_defaults=True, tag_field="schema",
             tag=SCHEMA):
    """``online`` with the manifest; ``offline`` with a reason (``time`` is null in the last
    will, which the broker sends on the device's behalf)."""

    state: Literal["online", "offline"]
    """online (birth) or offline (last will or shutdown)."""
    device: Id
    """Device id."""
    boot_id: Id
    """Agent process start."""
    time: Time | None = None
    """When it was sent (null in the last will)."""
    reason: Text = ""
    """"connection lost" (last will) or "shutdown"."""
    manifest: Manifest | None = None
    """What runs on the device (birth only)."""
