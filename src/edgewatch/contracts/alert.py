"""The alert message (``edgewatch.alert/1``): one state change of one alert."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from edgewatch.contracts.bounds import (
    MAX_FEATURES,
    MAX_ITEMS,
    Digest,
    Id,
    Name,
    Real,
    Seq,
    Text,
    Time,
)
from edgewatch.contracts.envelope import Loss

SCHEMA = "edgewatch.alert/1"
AlertState = Literal["firing", "acknowledged", "snoozed", "resolved"]
ACTIVE: tuple[AlertState, ...] = ("firing", "acknowledged", "snoozed")
"""States in which an alert counts as active."""
AlertSeverity = Literal["info", "warning", "critical"]
SEVERITY_ORDER: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}
"""Alert severities, most severe first (how operators list alerts)."""


class Expected(Struct, forbid_unknown_fields=True):
    """What the rule considers normal: ``observed <op> value``."""

    op: Literal[">", ">=", "<", "<="]
    value: Real


class Span(Struct, forbid_unknown_fields=True):
    """The window the alert was evaluated on."""

    start: Time | None = None
    end: Time | None = None


class Evidence(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One feature behind a drift alert: how far it moved and the verdict on it."""

    feature: Name
    effect: Real | None = None
    """Effect size (reference SDs; JS distance for label mixes)."""
    status: Literal["ok", "warning", "drift"] = "ok"
    """The drift verdict's status of the feature."""
    drifted: bool = False
    """Confirmed (status drift for the configured number of windows in a row)."""


class Member(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Another active alert of the same incident, as listed on the incident's lead."""

    id: Id
    rule: Name
    severity: AlertSeverity
    state: AlertState
    subject: Text = ""
    observed: Real | None = None
    message: Text = ""


class Alert(Struct, forbid_unknown_fields=True, omit_defaults=True, tag_field="schema",
            tag=SCHEMA):
    """What went wrong, what was expected, over which window."""

    id: Id
    """Stable id of this alert (rule and subject) across its state changes."""
    rule: Name
    """The rule that fired (alerts.rules[].name)."""
    state: AlertState
    """firing, acknowledged, snoozed or resolved."""
    severity: AlertSeverity
    """The rule's severity."""
    window: Span
    """The window whose summary triggered this state change."""
    since: Time
    """When the alert first fired."""
    updated: Time
    """When this state change happened."""
    subject: Text = ""
    """The feature, fault or stage the rule fired for ("" for device-wide rules)."""
    metric: Text = ""
    """What the rule watches (docs/alerts.md)."""
    message: Text = ""
    """One sentence for people."""
    observed: Real | None = None
    """The value that fired the rule."""
    expected: Expected | None = None
    """What would have been normal."""
    model_sha256: Digest = ""
    """The model running when it fired."""
    renotify: bool = False
    """A reminder of an alert still firing, not a new state."""
    snoozed_until: Time | None = None
    """End of a snooze."""
    device: Id = ""
    """Device id."""
    boot_id: Id = ""
    """Agent process start."""
    seq: Seq = 0
    """Per-device message number."""
    historical: bool = False
    """Sent from a backlog."""
    loss: Loss | None = None
    group: Id = ""
    """The rule's incident group (alerts.rules[].incident); "" in messages of older agents."""
    incident: Id = ""
    """On a member of an incident: the id of the incident's lead alert. Members are stored
    but not notified (the collector does not route them); "" on a lead or a lone alert."""
    members: Annotated[list[Member], Meta(max_length=MAX_ITEMS)] = field(
        default_factory=list)
    """On a lead: the incident's other active alerts when this message was sent."""
    evidence: Annotated[list[Evidence], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=list)
    """On drift alerts: the features the verdict flagged, largest effect first."""
