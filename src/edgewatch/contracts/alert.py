"""The alert message (``edgewatch.alert/1``): one state change of one alert."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from edgewatch.contracts.bounds import Digest, Id, Name, Real, Seq, Text, Time
from edgewatch.contracts.envelope import Loss

SCHEMA = "edgewatch.alert/1"
AlertState = Literal["firing", "acknowledged", "snoozed", "resolved"]
ACTIVE: tuple[AlertState, ...] = ("firing", "acknowledged", "snoozed")
"""States in which an alert counts as active."""
AlertSeverity = Literal["info", "warning", "critical"]


class Expected(Struct, forbid_unknown_fields=True):
    """What the rule considers normal: ``observed <op> value``."""

    op: Literal[">", ">=", "<", "<="]
    value: Real


class Span(Struct, forbid_unknown_fields=True):
    """The window the alert was evaluated on."""

    start: Time | None = None
    end: Time | None = None


class Alert(Struct, forbid_unknown_fields=True, omit_defaults=True, tag_field="schema",
            tag=SCHEMA):
    """What went wrong, what was expected, over which window."""

    id: Id
    rule: Name
    state: AlertState
    severity: AlertSeverity
    window: Span
    since: Time
    updated: Time
    subject: Text = ""
    """The feature, fault or stage the rule fired for ("" for device-wide rules)."""
    metric: Text = ""
    message: Text = ""
    observed: Real | None = None
    expected: Expected | None = None
    model_sha256: Digest = ""
    renotify: bool = False
    snoozed_until: Time | None = None
    device: Id = ""
    boot_id: Id = ""
    seq: Seq = 0
    historical: bool = False
    loss: Loss | None = None
