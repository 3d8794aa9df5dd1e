"""What goes into the store and what comes out of it: the stored kinds, the items to ingest,
quarantined messages and the state of a device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from edgewatch.contracts.alert import ACTIVE, Alert
from edgewatch.contracts.codec import Message
from edgewatch.contracts.command import CommandResult
from edgewatch.contracts.reference import Reference
from edgewatch.contracts.status import Manifest, Status
from edgewatch.contracts.summary import Summary

MESSAGE_KINDS = ("summary", "alert", "cmd_result")
"""Kinds stored in ``messages``, keyed by (device, boot_id, seq)."""
STATUS_KIND = "status"
"""The retained birth / last-will kind: updates ``devices`` only."""
ACTIVE_ALERT_STATES = ACTIVE
"""Alert states that count as active (in the alert's latest message)."""

REFERENCE_KIND = "reference"
"""The retained reference profile: stored in ``references`` by (device, reference id)."""
KINDS: dict[type, str] = {Summary: "summary", Alert: "alert", CommandResult: "cmd_result",
                          Status: STATUS_KIND, Reference: REFERENCE_KIND}
"""The kind of each device message type (the leaf of its topic)."""


class Item(NamedTuple):
    """One message to ingest, decoded (:func:`edgewatch.contracts.codec.decode`)."""

    kind: str
    fleet: str
    device: str
    """The topic's device (the message must name the same)."""
    message: Message
    received: float
    topic: str = ""
    """The topic it arrived on, and its bytes as received: what :class:`Quarantined`
    keeps when the store refuses the message."""
    raw: bytes = b""
    retained: bool = False
    """Delivered by the broker from its retained store (on subscribing), not sent now by
    the device: not a sign of life, so it does not move the device's ``last_seen``."""
    canonical: bytes = b""
    """The message's canonical JSON when the decoder wrote it already
    (:func:`edgewatch.contracts.codec.canonical`); empty: the store writes it."""


@dataclass(frozen=True)
class Quarantined:
    """A message the store refused, kept as received in the ``quarantine`` table."""

    received: float
    topic: str
    reason: str
    """One of :data:`edgewatch.contracts.codec.REASONS` (``store`` from the ingest)."""
    detail: str
    payload: bytes
    id: int | None = None
    """Assigned by the store."""


@dataclass(frozen=True)
class DeviceState:
    """What the collector knows about one device."""

    device: str
    fleet: str
    online: bool
    """State of the latest status message (False until a birth arrives)."""
    status_time: float | None
    """Time of the latest status (its ``time``, or when it was received)."""
    last_seen: float | None
    """When the latest message or birth from the device was received."""
    boot_id: str | None
    """Boot id of the latest status."""
    manifest: Manifest | None
    """Manifest of the latest birth (None when none, or when it does not decode)."""
    last_summary: Summary | None
    """The summary with the greatest window end (None when none, or when it does not
    decode)."""
    last_window_end: float | None
    summaries: int
    historical: int
    """Messages flagged ``historical`` (sent from a backlog)."""
    active_alerts: int
    """Alert ids whose latest message (highest seq) is firing, acknowledged or snoozed."""
    gaps: int
    """Seqs missing between the device's smallest and largest known seq."""
    unreadable: int = 0
    """Stored payloads of the device this read could not decode (manifest, latest summary):
    left out above, logged."""
