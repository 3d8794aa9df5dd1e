"""The device's retained status (``edgewatch.status/1``): birth message with the manifest,
last will, clean shutdown."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from edgewatch.contracts.bounds import Digest, Id, Name, Text, Time

SCHEMA = "edgewatch.status/1"


class Manifest(Struct, forbid_unknown_fields=True, frozen=True):
    """What is running on the device, announced in every birth message."""

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
