"""Alert rules evaluated on every window, with state operators can act on.

One alert per (rule, subject) fires when the rule's condition has held for ``for_windows``
consecutive windows and resolves after ``resolve_windows`` clear windows (hysteresis via
``resolve_threshold``). A firing alert nobody acknowledged is sent again every
``renotify_s``; a snoozed one not before its snooze ends. Time is the windows' own time
(footage time in a replay), so replays and live runs behave alike. See docs/alerts.md.

Incidents: each rule has an incident group (``rule_metrics.incident_group``). An alert that
fires while another alert of its group is active joins that incident as a *member*: its
messages carry ``incident`` = the lead's id, and the collector stores them without
notifying anyone; the lead's messages list the active members. The incident stays open
while any of its alerts is active: a lead whose own condition clears is held (``cleared``)
until its members have resolved, and only then resolves. ``signal`` fires and resolves the
no-signal alerts (metric ``signal``) at once, from the monitor thread.

The engine is the state machine; what the alerts say is in ``messages``, the operators'
commands (which call the transitions here) in ``handlers``.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable
from typing import Any

from edgewatch import contracts
from edgewatch.agent.alerts import messages
from edgewatch.agent.alerts.handlers import AlertCommands
from edgewatch.agent.alerts.rule_metrics import SIGNAL, incident_group, observe
from edgewatch.agent.alerts.state import Alert, AlertStore, Override
from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.records import SignalChange
from edgewatch.config.agent import AlertsConfig, RuleConfig
from edgewatch.contracts.alert import SEVERITY_ORDER

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}
Emit = Callable[[contracts.Alert], None]
"""Receives every alert message (the outbox, replay lines, tests)."""


class AlertEngine:
    """Evaluates rules on summaries and carries out operators' commands (``handlers``);
    ``emit`` sends the alert messages."""

    def __init__(self, cfg: AlertsConfig, store: AlertStore, emit: Emit, *,
                 model_sha256: str = "") -> None:
        self.cfg = cfg
        self.store = store
        self.emit = emit
        self.model_sha256 = model_sha256
        self.rules = {r.name: r for r in cfg.rules}
        self.active = store.alerts()
        self.overrides = store.overrides()
        self.breaches = store.counters()
        self.now = max((a.window_end for a in self.active.values()), default=0.0)
        self.lock = threading.RLock()
        """Held for each evaluation and each command (``handlers``)."""

    # -- rules ----------------------------------------------------------------------------

    def rule(self, name: str) -> RuleConfig:
        """The rule with operator overrides applied."""
        base = self.rules[name]
        o = self.overrides.get(name, Override())
        return dataclasses.replace(
            base,
            enabled=base.enabled if o.enabled is None else o.enabled,
            threshold=base.threshold if o.threshold is None else o.threshold,
            resolve_threshold=(base.resolve_threshold if o.resolve_threshold is None
                               else o.resolve_threshold),
        )

    def evaluate(self, summary: dict[str, Any]) -> None:
        """Judge one window summary against every enabled rule."""
        with self.lock:
            window = summary.get("window") or {}
            self.now = max(self.now, float(window.get("end", self.now)))
            firing: list[tuple[RuleConfig, str, float]] = []
            back: list[Alert] = []  # no-signal alerts whose picture came back
            for name in self.rules:
                rule = self.rule(name)
                if not rule.enabled:
                    continue
                if rule.metric == SIGNAL:  # no window value: only reminders are due
                    for alert in [a for a in self.active.values() if a.rule == name]:
                        if alert.signal_back:
                            back.append(alert)
                        elif self._maybe_renotify(alert):
                            self.store.save_alert(alert)
                    continue
                for subject, value in observe(rule.metric, summary).items():
                    if self._judge(rule, subject, value, summary):
                        firing.append((rule, subject, value))
            # alerts firing on the same window: the most severe opens the incident
            for rule, subject, value in sorted(
                    firing, key=lambda f: SEVERITY_ORDER.get(f[0].severity, 9)):
                self._fire(rule, f"{rule.name}/{subject}", subject, value, summary)
            for alert in back:  # this window's faults of the same cause have joined by now
                self._signal_resolve(alert)
            self._close_incidents()

    def _judge(self, rule: RuleConfig, subject: str, value: float,
               summary: dict[str, Any]) -> bool:
        """Update the (rule, subject) state; True when a new alert is due to fire."""
        key = f"{rule.name}/{subject}"
        alert = self.active.get(key)
        breached = _OPS[rule.op](value, rule.threshold)
        if alert is None:
            count = self.breaches.get(key, 0) + 1 if breached else 0
            self._set_breaches(key, count)
            return count >= rule.for_windows
        clear_at = rule.threshold if rule.resolve_threshold is None else rule.resolve_threshold
        clear = not _OPS[rule.op](value, clear_at)
        self._update_window(alert, value, summary)
        alert.clear_count = alert.clear_count + 1 if clear else 0
        alert.cleared = alert.clear_count >= rule.resolve_windows
        if alert.cleared and not self._members(alert):
            self._resolve(alert,
                          f"back within range: {messages.describe(rule, subject, value)}")
        else:  # still breached, or a lead held open for its members
            self._maybe_renotify(alert)
            self.store.save_alert(alert)
        return False

    def _set_breaches(self, key: str, count: int) -> None:
        if self.breaches.get(key, 0) != count:
            self.breaches[key] = count
            self.store.save_counter(key, count)

    @staticmethod
    def _update_window(alert: Alert, value: float, summary: dict[str, Any]) -> None:
        window = summary.get("window") or {}
        alert.observed = value
        alert.window_start = float(window.get("start", alert.window_start))
        alert.window_end = float(window.get("end", alert.window_end))
        if alert.metric.startswith("drift."):
            alert.evidence = messages.evidence(summary) or alert.evidence  # latest flagged

    # -- transitions ----------------------------------------------------------------------

    def _fire(self, rule: RuleConfig, key: str, subject: str, value: float,
              summary: dict[str, Any]) -> None:
        window = summary.get("window") or {}
        start, end = float(window.get("start", self.now)), float(window.get("end", self.now))
        alert = Alert(key=key, id=uuid.uuid4().hex[:16], rule=rule.name, subject=subject,
                      metric=rule.metric, severity=rule.severity, state="firing",
                      since=start, observed=value, window_start=start, window_end=end,
                      last_notified=self.now)
        alert.message = messages.fired(rule, subject, value, summary)
        if rule.metric.startswith("drift."):
            alert.evidence = messages.evidence(summary)
        self._open(alert, rule)

    def _open(self, alert: Alert, rule: RuleConfig) -> None:
        """A new alert: the lead of a new incident, or a member of its group's open one."""
        alert.group = incident_group(rule)
        lead = self._lead(alert.group)
        alert.incident = "" if lead is None else lead.id
        self.active[alert.key] = alert
        self._set_breaches(alert.key, 0)
        self.store.save_alert(alert)
        self._notify(alert)

    def _lead(self, group: str) -> Alert | None:
        """The lead of the open incident of ``group``, if any."""
        return next((a for a in self.active.values() if a.group == group and not a.incident),
                    None)

    def _members(self, alert: Alert) -> list[Alert]:
        """The active members of the incident ``alert`` leads (none for a member)."""
        if alert.incident:
            return []
        return [a for a in self.active.values() if a.incident == alert.id]

    def _resolve(self, alert: Alert, why: str) -> None:
        members = self._members(alert)
        alert.state = "resolved"
        alert.cleared = False
        alert.message = messages.resolved(alert.rule, why)
        self.active.pop(alert.key, None)
        self.store.drop_alert(alert.key)
        self._notify(alert)
        if members:  # only when forced (rule disabled): the oldest member leads from now on
            lead = min(members, key=lambda a: (a.since, a.id))
            for m in members:
                m.incident = "" if m is lead else lead.id
                self.store.save_alert(m)
            lead.last_notified = self.now
            self._notify(lead)

    def _close_incidents(self) -> None:
        """Resolve the held leads whose members have all resolved: the incident is over."""
        for lead in [a for a in self.active.values() if a.cleared and not a.incident]:
            if not self._members(lead):
                self._resolve(lead, "back within range, and the rest of its incident has "
                                    "resolved")

    def _maybe_renotify(self, alert: Alert) -> bool:
        """Send a reminder if one is due (members get none: their lead's stand for the
        incident); True if one was sent."""
        if alert.state == "snoozed" and self.now >= alert.snoozed_until:
            alert.state = "firing"
            alert.last_notified = self.now
            self._notify(alert, renotify=True)
            return True
        if (alert.state == "firing" and not alert.incident and self.cfg.renotify_s > 0
                and self.now - alert.last_notified >= self.cfg.renotify_s):
            alert.last_notified = self.now
            self._notify(alert, renotify=True)
            return True
        return False

    def _notify(self, alert: Alert, renotify: bool = False) -> None:
        self.emit(self.payload(alert, renotify))

    def payload(self, alert: Alert, renotify: bool = False) -> contracts.Alert:
        """The alert message of an alert's current state (without transport fields); a
        lead's lists its incident's active members."""
        rule = self.rule(alert.rule) if alert.rule in self.rules else None
        members = self._members(alert) if alert.key in self.active else []
        return messages.alert_message(alert, rule, updated=self.now,
                                      model_sha256=self.model_sha256, renotify=renotify,
                                      members=members)

    # -- the no-signal fast path -----------------------------------------------------------

    def signal(self, change: SignalChange) -> None:
        """The picture went away or came back (``SignalChange`` from the monitor thread):
        fire at once, or resolve, the alerts of the enabled rules on metric ``signal`` (one
        per fault; ``for_windows`` does not apply, the monitor already waited)."""
        with self.lock:
            self.now = max(self.now, float(change.at))
            for name in self.rules:
                rule = self.rule(name)
                if rule.metric != SIGNAL or not rule.enabled:
                    continue
                if change.lost:
                    self._signal_lost(rule, change)
                else:
                    for alert in [a for a in self.active.values() if a.rule == name]:
                        self._signal_back(alert, change)
            self._close_incidents()

    def _signal_lost(self, rule: RuleConfig, change: SignalChange) -> None:
        key = f"{rule.name}/{change.fault}"
        alert = self.active.get(key)
        if alert is None:
            if not _OPS[rule.op](1.0, rule.threshold):
                return
            since = float(change.since)
            alert = Alert(key=key, id=uuid.uuid4().hex[:16], rule=rule.name,
                          subject=change.fault, metric=rule.metric, severity=rule.severity,
                          state="firing", since=since, observed=1.0, window_start=since,
                          window_end=float(change.at), last_notified=self.now)
            alert.message = messages.no_signal(rule, change.fault, since, change.at)
            self._open(alert, rule)
            return
        alert.window_end = max(alert.window_end, float(change.at))
        alert.observed, alert.clear_count, alert.cleared = 1.0, 0, False
        alert.signal_back = 0.0  # lost again before the window closed: still one alert
        self._maybe_renotify(alert)
        self.store.save_alert(alert)

    def _signal_back(self, alert: Alert, change: SignalChange) -> None:
        """The picture is back: the alert resolves with the next window judged (see
        ``Alert.signal_back``), not now."""
        alert.window_end = max(alert.window_end, float(change.at))
        alert.observed, alert.signal_back = 0.0, float(change.at)
        self.store.save_alert(alert)

    def _signal_resolve(self, alert: Alert) -> None:
        alert.cleared = True
        if not self._members(alert):
            self._resolve(alert, "the signal came back after "
                                 f"{alert.signal_back - alert.since:.1f} s")
        else:
            self.store.save_alert(alert)

    # -- operators' transitions (``handlers`` checks the arguments) -------------------------

    def register(self, router: CommandRouter) -> None:
        """Register the alert commands (``handlers``) on a command router."""
        AlertCommands(self).register(router)

    def acknowledge(self, alert: Alert) -> None:
        """Acknowledged: no more renotifications until it resolves."""
        with self.lock:
            alert.state = "acknowledged"
            self.store.save_alert(alert)
            self._notify(alert)

    def snooze(self, alert: Alert, seconds: float) -> None:
        """Snoozed: notified again, firing, once ``seconds`` of window time have passed."""
        with self.lock:
            alert.state = "snoozed"
            alert.snoozed_until = self.now + seconds
            self.store.save_alert(alert)
            self._notify(alert)

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable a rule; disabling resolves its active alerts."""
        with self.lock:
            override = self.overrides.setdefault(name, Override())
            override.enabled = enabled
            self.store.save_override(name, override)
            if not enabled:
                # members first: a lead resolved last leaves fewer members to hand over
                for alert in sorted([a for a in self.active.values() if a.rule == name],
                                    key=lambda a: not a.incident):
                    if alert.key in self.active:
                        self._resolve(alert, "rule disabled by an operator")
                self._close_incidents()

    def set_threshold(self, name: str, threshold: float,
                      resolve_threshold: float | None) -> RuleConfig:
        """Override a rule's threshold (and resolve threshold); returns the rule as it is now."""
        with self.lock:
            override = self.overrides.setdefault(name, Override())
            override.threshold = threshold
            if resolve_threshold is not None:
                override.resolve_threshold = resolve_threshold
            self.store.save_override(name, override)
            return self.rule(name)
