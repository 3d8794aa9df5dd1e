"""What the collector sends for a device alert: the Alertmanager API v2 alert and the text of a
chat webhook message (:mod:`edgewatch.collector.routing` sends them).

Alertmanager (``POST <url>/api/v2/alerts``)
    One alert per message, labelled ``alertname`` (``Edgewatch`` + the rule's name in
    CamelCase: rule ``no-signal`` is ``EdgewatchNoSignal``, the same vocabulary as the
    Prometheus rules in ``configs/prometheus``), ``device``, ``fleet``, ``rule``,
    ``subject`` (when the alert has one), ``severity``, ``group`` (the incident group:
    ``drift``, ``quality``, ...), ``source="device"`` and ``edgewatch_id`` (the device's
    alert id: one incident, one label set). Annotations carry the sentence (``summary``),
    ``runbook_url`` (the runbook section for the rule's metric, see :func:`runbook_url`),
    ``observed``, ``expected`` (``"<= 0.3"``), the window as an ISO 8601 interval
    (``start/end``, UTC) and the device-side ``state``; an incident's lead
    adds ``evidence`` (drifted features and effects, ``"saturation 81.5 (drift), ..."``) and
    ``members`` (the incident's other active alerts, ``"anomalies = 1 (firing); ..."``).
    Members of an incident are not sent at all (``routing``).

    ``startsAt`` is the alert's ``since``. A *resolved* alert is sent with ``endsAt`` = its
    ``updated`` time (never later than now), which resolves it in Alertmanager. An *active*
    alert (firing, acknowledged, snoozed) is sent with ``endsAt`` = now + ``active_ttl_s``:
    Alertmanager would otherwise resolve it after its own ``resolve_timeout`` (5 min), long
    before the device sends it again, while an ``endsAt`` in the far future would keep the
    alert of a device that vanished firing forever. Devices re-send an unacknowledged firing
    alert every ``alerts.renotify_s`` (1 h by default), so the default TTL (3 h) outlives
    a renotify; an acknowledged alert is not re-sent and therefore expires from
    Alertmanager after the TTL (the device, ``edgewatch alerts list`` and the store keep it).

    Acknowledged and snoozed alerts are sent as active alerts with ``state`` in their
    annotations: silencing and inhibiting are Alertmanager's job (a silence matching
    ``edgewatch_id``, or an inhibit rule on the annotation-free labels), not the collector's.

Webhook (Slack-compatible incoming webhook)
    ``{"text": "[FIRING] warning cam-12: <sentence>"}`` with ``FIRING``, ``RESOLVED``,
    ``ACKNOWLEDGED`` or ``SNOOZED``, then the evidence and members lines when there are any
    and, unless resolved, the runbook line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import msgspec

from edgewatch.contracts.alert import Alert, Evidence, Expected, Member, Span

ACTIVE_TTL_S = 3 * 3600.0
"""Default lifetime in Alertmanager of an active alert the device does not send again."""
_STATE_TAGS = {"firing": "FIRING", "resolved": "RESOLVED", "acknowledged": "ACKNOWLEDGED",
               "snoozed": "SNOOZED"}


def rfc3339(t: float) -> str:
    """``2026-01-01T00:00:00.000Z`` for epoch seconds ``t``."""
    stamp = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


AlertPayload = Alert | Mapping[str, Any]
"""An alert message: decoded, or (tests, older callers) as a JSON object to be decoded."""


def as_alert(payload: AlertPayload) -> Alert:
    """The message as an :class:`Alert`; msgspec.ValidationError when a mapping is not one."""
    if isinstance(payload, Alert):
        return payload
    return msgspec.convert(dict(payload), type=Alert)


def _iso_window(window: Span) -> str:
    if window.start is None or window.end is None:
        return ""
    return f"{rfc3339(window.start)}/{rfc3339(window.end)}"


def _expected(expected: Expected | None) -> str:
    return "" if expected is None else f"{expected.op} {expected.value}"


def evidence_text(evidence: list[Evidence], limit: int = 12) -> str:
    """``saturation 81.5 (drift), entropy 60.6 (drift), ... (+3 more)``."""
    parts = [f"{e.feature} {e.effect:.3g} ({e.status})" if e.effect is not None
             else f"{e.feature} ({e.status})" for e in evidence[:limit]]
    more = len(evidence) - limit
    return ", ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def members_text(members: list[Member], limit: int = 12) -> str:
    """``anomalies = 1 (firing); quality/black = 0.8 (acknowledged)``."""
    parts = []
    for m in members[:limit]:
        name = f"{m.rule}/{m.subject}" if m.subject else m.rule
        value = "" if m.observed is None else f" = {m.observed:.4g}"
        parts.append(f"{name}{value} ({m.state})")
    more = len(members) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


RUNBOOK = "docs/runbook.md"
"""Where the runbook is, by default (``alerting.runbook_url``: where your team hosts it)."""
RUNBOOK_SECTIONS: dict[str, str] = {
    "drift.severity": "a-device-reports-drift",
    "drift.score": "a-device-reports-drift",
    "drift.feature": "a-device-reports-drift",
    "anomaly.rate": "anomalous-frames",
    "quality": "data-quality-faults",
    "signal": "no-signal",
    "latency.p95": "performance-and-resources",
    "fps": "performance-and-resources",
    "cpu": "performance-and-resources",
    "memory": "performance-and-resources",
    "disk": "performance-and-resources",
    "temperature": "performance-and-resources",
    "outbox.pending": "outbox-backlog",
}
"""The runbook section (its anchor in docs/runbook.md) for each alert-rule metric."""


def alert_name(rule: str) -> str:
    """The Alertmanager ``alertname`` of a device rule: ``Edgewatch`` + CamelCase.

    >>> alert_name("no-signal"), alert_name("drift"), alert_name("feature_drift")
    ('EdgewatchNoSignal', 'EdgewatchDrift', 'EdgewatchFeatureDrift')
    """
    words = [w for w in rule.replace("_", "-").replace(".", "-").split("-") if w]
    return "Edgewatch" + "".join(w[:1].upper() + w[1:] for w in words or ["unknown"])


def runbook_url(alert: Alert, base: str = RUNBOOK) -> str:
    """The runbook section for an alert's metric (the runbook's start for others)."""
    section = RUNBOOK_SECTIONS.get(alert.metric)
    return f"{base}#{section}" if section else base


def _labels(fleet: str, alert: Alert) -> dict[str, str]:
    rule = alert.rule or "unknown"
    labels = {"alertname": alert_name(rule), "device": alert.device,
              "fleet": fleet, "rule": rule, "subject": alert.subject,
              "severity": alert.severity, "group": alert.group, "source": "device",
              "edgewatch_id": alert.id}
    return {k: v for k, v in labels.items() if v}  # an empty label is no label


def _annotations(alert: Alert, runbook: str = RUNBOOK) -> dict[str, str]:
    notes = {"summary": alert.message, "runbook_url": runbook_url(alert, runbook),
             "observed": "" if alert.observed is None else str(alert.observed),
             "expected": _expected(alert.expected),
             "window": _iso_window(alert.window),
             "state": alert.state,
             "evidence": evidence_text(alert.evidence),
             "members": members_text(alert.members)}
    if alert.state == "snoozed" and alert.snoozed_until is not None:
        notes["snoozed_until"] = rfc3339(alert.snoozed_until)
    if alert.historical:
        notes["historical"] = "true"
    return {k: v for k, v in notes.items() if v}


def alertmanager_alert(fleet: str, payload: AlertPayload, now: float,
                       active_ttl_s: float = ACTIVE_TTL_S,
                       generator_url: str = "", runbook: str = RUNBOOK) -> dict[str, Any]:
    """The Alertmanager API v2 alert for an ``edgewatch.alert/1`` message (module docs)."""
    alert = as_alert(payload)
    since = alert.since
    if alert.state == "resolved":
        ends = max(min(alert.updated, now), since)
    else:
        ends = max(now, since) + active_ttl_s
    out: dict[str, Any] = {"labels": _labels(fleet, alert),
                           "annotations": _annotations(alert, runbook),
                           "startsAt": rfc3339(since), "endsAt": rfc3339(ends)}
    if generator_url:
        out["generatorURL"] = generator_url
    return out


def slack_text(payload: AlertPayload, runbook: str = RUNBOOK) -> str:
    """``[FIRING] warning cam-12: <sentence>``, then the evidence, the incident's members
    and the runbook section (``runbook: docs/runbook.md#...``)."""
    alert = as_alert(payload)
    tag = _STATE_TAGS.get(alert.state, alert.state.upper())
    message = alert.message or alert.rule or "alert"
    text = f"[{tag}] {alert.severity} {alert.device or '?'}: {message}"
    if alert.evidence:
        text += f"\nevidence: {evidence_text(alert.evidence)}"
    if alert.members:
        text += f"\nalso in this incident: {members_text(alert.members)}"
    if alert.state != "resolved":
        text += f"\nrunbook: {runbook_url(alert, runbook)}"
    return text
