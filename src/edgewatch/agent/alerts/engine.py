"""Alert rules evaluated on every window, with state operators can act on.

One alert per (rule, subject) fires when the rule's condition has held for ``for_windows``
consecutive windows and resolves after ``resolve_windows`` clear windows (hysteresis via
``resolve_threshold``). A firing alert nobody acknowledged is sent again every
``renotify_s``; a snoozed one not before its snooze ends. Time is the windows' own time
(footage time in a replay), so replays and live runs behave alike. See docs/alerts.md.

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
from edgewatch.agent.alerts.rule_metrics import observe
from edgewatch.agent.alerts.state import Alert, AlertStore, Override
from edgewatch.agent.commands import CommandRouter
from edgewatch.config.agent import AlertsConfig, RuleConfig

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
            for name in self.rules:
                rule = self.rule(name)
                if rule.enabled:
                    for subject, value in observe(rule.metric, summary).items():
                        self._judge(rule, subject, value, summary)

    def _judge(self, rule: RuleConfig, subject: str, value: float,
               summary: dict[str, Any]) -> None:
        key = f"{rule.name}/{subject}"
        alert = self.active.get(key)
        breached = _OPS[rule.op](value, rule.threshold)
        if alert is None:
            count = self.breaches.get(key, 0) + 1 if breached else 0
            self._set_breaches(key, count)
            if count >= rule.for_windows:
                self._fire(rule, key, subject, value, summary)
            return
        clear_at = rule.threshold if rule.resolve_threshold is None else rule.resolve_threshold
        clear = not _OPS[rule.op](value, clear_at)
        self._update_window(alert, value, summary)
        alert.clear_count = alert.clear_count + 1 if clear else 0
        if alert.clear_count >= rule.resolve_windows:
            self._resolve(alert,
                          f"back within range: {messages.describe(rule, subject, value)}")
        else:
            self._maybe_renotify(alert)
            self.store.save_alert(alert)

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
        self.active[key] = alert
        self._set_breaches(key, 0)
        self.store.save_alert(alert)
        self._notify(alert)

    def _resolve(self, alert: Alert, why: str) -> None:
        alert.state = "resolved"
        alert.message = messages.resolved(alert.rule, why)
        self.active.pop(alert.key, None)
        self.store.drop_alert(alert.key)
        self._notify(alert)

    def _maybe_renotify(self, alert: Alert) -> None:
        if alert.state == "snoozed" and self.now >= alert.snoozed_until:
            alert.state = "firing"
            alert.last_notified = self.now
            self._notify(alert, renotify=True)
        elif (alert.state == "firing" and self.cfg.renotify_s > 0
              and self.now - alert.last_notified >= self.cfg.renotify_s):
            alert.last_notified = self.now
            self._notify(alert, renotify=True)

    def _notify(self, alert: Alert, renotify: bool = False) -> None:
        self.emit(self.payload(alert, renotify))

    def payload(self, alert: Alert, renotify: bool = False) -> contracts.Alert:
        """The alert message of an alert's current state (without transport fields)."""
        rule = self.rule(alert.rule) if alert.rule in self.rules else None
        return messages.alert_message(alert, rule, updated=self.now,
                                      model_sha256=self.model_sha256, renotify=renotify)

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
                for alert in [a for a in self.active.values() if a.rule == name]:
                    self._resolve(alert, "rule disabled by an operator")

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
