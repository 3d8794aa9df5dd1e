"""What an alert says: the operator's sentences and the alert message sent on the wire."""

from __future__ import annotations

import datetime as dt
from typing import Any

from edgewatch import contracts
from edgewatch.agent.alerts.rule_metrics import METRICS
from edgewatch.agent.alerts.state import Alert
from edgewatch.config.agent import RuleConfig
from edgewatch.contracts.alert import Expected, Span

NEGATION = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}
"""The expected side of a rule's comparison."""


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def describe(rule: RuleConfig, subject: str, value: float) -> str:
    """What was observed: ``<metric> <subject> = <value>``."""
    what = f"{rule.metric} {subject}".strip()
    return f"{what} = {value:.4g}"


def fired(rule: RuleConfig, subject: str, value: float, summary: dict[str, Any]) -> str:
    """The sentence of a firing alert: what, when, what was expected, and why (drift)."""
    window = summary.get("window") or {}
    span = f"{_utc(float(window.get('start', 0)))}-{_utc(float(window.get('end', 0)))[11:]}"
    text = (f"{rule.name}: {describe(rule, subject, value)} in the window {span} UTC,"
            f" expected {NEGATION[rule.op]} {rule.threshold:g} "
            f"({METRICS[rule.metric][0]}), for {rule.for_windows} window(s)")
    reasons = (summary.get("drift") or {}).get("reasons") or []
    reason = _reason_for(subject, reasons) if rule.metric.startswith("drift") else None
    return f"{text}; {reason}" if reason else text


def _reason_for(subject: str, reasons: list[str]) -> str | None:
    """The drift verdict's reason that explains ``subject``: the one naming that feature, or
    for a device-wide rule (no subject) the worst one (reasons come worst first)."""
    if not subject:
        return reasons[0] if reasons else None
    return next((r for r in reasons if r.startswith(f"{subject}: ")), None)


def resolved(rule_name: str, why: str) -> str:
    """The sentence of a resolved alert."""
    return f"{rule_name}: resolved, {why}"


def alert_message(alert: Alert, rule: RuleConfig | None, *, updated: float, model_sha256: str,
                  renotify: bool = False) -> contracts.Alert:
    """The alert message of an alert's current state (without transport fields).

    ``rule``: the rule as it applies now (operator overrides included), or None when the
    configuration no longer has it (then the message has no ``expected``).
    """
    expected = None
    if rule is not None:
        expected = Expected(op=NEGATION[rule.op], value=rule.threshold)  # type: ignore[arg-type]
    return contracts.Alert(
        id=alert.id, rule=alert.rule, subject=alert.subject, metric=alert.metric,
        severity=alert.severity, state=alert.state,  # type: ignore[arg-type]
        message=alert.message, observed=alert.observed, expected=expected,
        window=Span(alert.window_start, alert.window_end), since=alert.since,
        updated=updated, model_sha256=model_sha256, renotify=renotify,
        snoozed_until=alert.snoozed_until if alert.state == "snoozed" else None,
    )
