"""Alert rules evaluated on every window, with state operators can act on.

One alert per (rule, subject) fires when the rule's condition has held for ``for_windows``
consecutive windows and resolves after ``resolve_windows`` clear windows (hysteresis via
``resolve_threshold``). A firing alert nobody acknowledged is sent again every
``renotify_s``; a snoozed one not before its snooze ends. Time is the windows' own time
(footage time in a replay), so replays and live runs behave alike. See docs/alerts.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from edgewatch import contracts
from edgewatch.agent.alerts.rule_metrics import METRICS, observe
from edgewatch.agent.alerts.state import Alert, AlertStore, Override
from edgewatch.agent.commands import CommandError, CommandRouter
from edgewatch.config.agent import AlertsConfig, RuleConfig
from edgewatch.contracts.alert import Expected, Span

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}
_NEGATION = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}
Emit = Callable[[contracts.Alert], None]
"""Receives every alert message (the outbox, replay lines, tests)."""


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class AlertEngine:
    """Evaluates rules on summaries and handles alert commands; ``emit`` sends payloads."""

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
        self._lock = threading.RLock()

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
        with self._lock:
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
            self._resolve(alert, f"back within range: {self._describe(rule, subject, value)}")
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
        alert.message = self._sentence(rule, subject, value, summary)
        self.active[key] = alert
        self._set_breaches(key, 0)
        self.store.save_alert(alert)
        self._notify(alert)

    def _resolve(self, alert: Alert, why: str) -> None:
        alert.state = "resolved"
        alert.message = f"{alert.rule}: resolved, {why}"
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
        rule = self.rules.get(alert.rule)
        expected = None
        if rule is not None:
            r = self.rule(alert.rule)
            expected = Expected(op=_NEGATION[r.op], value=r.threshold)  # type: ignore[arg-type]
        return contracts.Alert(
            id=alert.id, rule=alert.rule, subject=alert.subject, metric=alert.metric,
            severity=alert.severity, state=alert.state,  # type: ignore[arg-type]
            message=alert.message, observed=alert.observed, expected=expected,
            window=Span(alert.window_start, alert.window_end), since=alert.since,
            updated=self.now, model_sha256=self.model_sha256, renotify=renotify,
            snoozed_until=alert.snoozed_until if alert.state == "snoozed" else None,
        )

    # -- sentences ------------------------------------------------------------------------

    @staticmethod
    def _describe(rule: RuleConfig, subject: str, value: float) -> str:
        what = f"{rule.metric} {subject}".strip()
        return f"{what} = {value:.4g}"

    def _sentence(self, rule: RuleConfig, subject: str, value: float,
                  summary: dict[str, Any]) -> str:
        window = summary.get("window") or {}
        span = f"{_utc(float(window.get('start', 0)))}-{_utc(float(window.get('end', 0)))[11:]}"
        text = (f"{rule.name}: {self._describe(rule, subject, value)} in the window {span} UTC,"
                f" expected {_NEGATION[rule.op]} {rule.threshold:g} "
                f"({METRICS[rule.metric][0]}), for {rule.for_windows} window(s)")
        reasons = (summary.get("drift") or {}).get("reasons") or []
        if rule.metric.startswith("drift") and reasons:
            text += f"; {reasons[0]}"
        return text

    # -- commands -------------------------------------------------------------------------

    def register(self, router: CommandRouter) -> None:
        router.register("ack", self._cmd_ack)
        router.register("snooze", self._cmd_snooze)
        router.register("disable", lambda a: self._cmd_enable(a, False))
        router.register("enable", lambda a: self._cmd_enable(a, True))
        router.register("set-threshold", self._cmd_threshold)
        router.register("list", self._cmd_list)

    def _find(self, args: dict[str, Any]) -> Alert:
        ident = args.get("alert")
        if not isinstance(ident, str) or not ident:
            raise CommandError("'alert' (an alert id or rule/subject) is required")
        for alert in self.active.values():
            if ident in (alert.id, alert.key, alert.rule if not alert.subject else None):
                return alert
        raise CommandError(f"no active alert {ident[:80]!r}")

    def _cmd_ack(self, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            alert = self._find(args)
            alert.state = "acknowledged"
            self.store.save_alert(alert)
            self._notify(alert)
            return {"alert": alert.id, "state": alert.state}

    def _cmd_snooze(self, args: dict[str, Any]) -> dict[str, Any]:
        seconds = args.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) \
                or not 0 < seconds <= 30 * 86400:
            raise CommandError("'seconds' must be a number in (0, 2592000]")
        with self._lock:
            alert = self._find(args)
            alert.state = "snoozed"
            alert.snoozed_until = self.now + float(seconds)
            self.store.save_alert(alert)
            self._notify(alert)
            return {"alert": alert.id, "state": alert.state,
                    "snoozed_until": alert.snoozed_until}

    def _rule_arg(self, args: dict[str, Any]) -> str:
        name = args.get("rule")
        if not isinstance(name, str) or name not in self.rules:
            known = ", ".join(sorted(self.rules))
            raise CommandError(f"'rule' must name a rule (known: {known})")
        return name

    def _cmd_enable(self, args: dict[str, Any], enabled: bool) -> dict[str, Any]:
        with self._lock:
            name = self._rule_arg(args)
            override = self.overrides.setdefault(name, Override())
            override.enabled = enabled
            self.store.save_override(name, override)
            if not enabled:
                for alert in [a for a in self.active.values() if a.rule == name]:
                    self._resolve(alert, "rule disabled by an operator")
            return {"rule": name, "enabled": enabled}

    def _cmd_threshold(self, args: dict[str, Any]) -> dict[str, Any]:
        value = args.get("threshold")
        resolve = args.get("resolve_threshold")
        for v, key in ((value, "threshold"), (resolve, "resolve_threshold")):
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)
                                  or not math.isfinite(v)):
                raise CommandError(f"'{key}' must be a finite number")
        if value is None:
            raise CommandError("'threshold' is required")
        with self._lock:
            name = self._rule_arg(args)
            override = self.overrides.setdefault(name, Override())
            override.threshold = float(value)
            if resolve is not None:
                override.resolve_threshold = float(resolve)
            self.store.save_override(name, override)
            rule = self.rule(name)
            return {"rule": name, "threshold": rule.threshold,
                    "resolve_threshold": rule.resolve_threshold}

    def _cmd_list(self, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return {
                "alerts": [msgspec.to_builtins(self.payload(a)) for a in self.active.values()],
                "rules": [dataclasses.asdict(self.rule(n)) for n in self.rules],
            }
