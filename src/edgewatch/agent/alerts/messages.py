"""What an alert says: the operator's sentences and the alert message sent on the wire."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from edgewatch import contracts
from edgewatch.agent.alerts.rule_metrics import METRICS
from edgewatch.agent.alerts.state import Alert
from edgewatch.config.agent import RuleConfig
from edgewatch.contracts.alert import Evidence, Expected, Member, Span
from edgewatch.contracts.bounds import MAX_FEATURES, MAX_ITEMS

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


_STATUS_RANK = {"drift": 2, "warning": 1, "ok": 0}
_FAULT_WORDS = {"black": "black frames", "frozen": "a frozen picture",
                "decode_error": "undecodable frames", "inference_error": "failed inference",
                "no_frames": "no frames from the source"}


def evidence(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The features behind a drift verdict (``contracts.alert.Evidence`` as dicts): those
    whose status is not ok, confirmed drift first, then by effect, at most MAX_FEATURES."""
    drift = summary.get("drift") or {}
    features = drift.get("features") or drift.get("flagged") or {}
    out: list[dict[str, Any]] = []
    for name, f in features.items():
        status = f.get("status", "ok") if isinstance(f, dict) else "ok"
        if status not in ("warning", "drift") or not name:
            continue
        item: dict[str, Any] = {"feature": str(name)[:128], "status": status}
        effect = f.get("effect")
        if isinstance(effect, (int, float)) and math.isfinite(effect) and abs(effect) < 1e300:
            item["effect"] = round(float(effect), 4)
        if f.get("drifted"):
            item["drifted"] = True
        out.append(item)
    out.sort(key=lambda e: (not e.get("drifted", False), -_STATUS_RANK[e["status"]],
                            -abs(e.get("effect", 0.0))))
    return out[:MAX_FEATURES]


def no_signal(rule: RuleConfig, fault: str, since: float, at: float) -> str:
    """The sentence of a no-signal alert: ``no signal: black frames since 12:00:03 (3.0 s)``."""
    what = _FAULT_WORDS.get(fault, fault.replace("_", " ") or "unknown cause")
    return (f"{rule.name}: no signal: {what} since {_utc(since)[11:]} UTC "
            f"({max(at - since, 0.0):.1f} s)")


def member(alert: Alert) -> Member:
    """An incident member as listed on its lead's messages."""
    return Member(id=alert.id, rule=alert.rule, severity=alert.severity,  # type: ignore[arg-type]
                  state=alert.state, subject=alert.subject,  # type: ignore[arg-type]
                  observed=alert.observed, message=alert.message[:4096])


def resolved(rule_name: str, why: str) -> str:
    """The sentence of a resolved alert."""
    return f"{rule_name}: resolved, {why}"


def alert_message(alert: Alert, rule: RuleConfig | None, *, updated: float, model_sha256: str,
                  renotify: bool = False,
                  members: Iterable[Alert] = ()) -> contracts.Alert:
    """The alert message of an alert's current state (without transport fields).

    ``rule``: the rule as it applies now (operator overrides included), or None when the
    configuration no longer has it (then the message has no ``expected``). ``members``: on
    an incident's lead, the incident's other active alerts.
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
        group=alert.group, incident=alert.incident,
        members=[member(m) for m in members][:MAX_ITEMS],
        evidence=[Evidence(**e) for e in alert.evidence][:MAX_FEATURES],
    )
