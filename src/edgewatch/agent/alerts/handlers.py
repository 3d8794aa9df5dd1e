"""The alert commands operators send the device: ack, snooze, disable, enable,
set-threshold and list.

Each handler checks its arguments (a bad one is refused with a ``CommandError`` the
operator reads), then asks the engine for the transition, under the engine's lock.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import msgspec

from edgewatch.agent.alerts.rule_metrics import incident_group
from edgewatch.agent.alerts.state import Alert
from edgewatch.agent.commands import CommandError, CommandRouter

if TYPE_CHECKING:
    from edgewatch.agent.alerts.engine import AlertEngine


class AlertCommands:
    """The command handlers of one alert engine."""

    def __init__(self, engine: AlertEngine) -> None:
        self.engine = engine

    def register(self, router: CommandRouter) -> None:
        router.register("ack", self.ack)
        router.register("snooze", self.snooze)
        router.register("disable", lambda a: self.enable(a, False))
        router.register("enable", lambda a: self.enable(a, True))
        router.register("set-threshold", self.set_threshold)
        router.register("list", self.list)

    def _find(self, args: dict[str, Any]) -> Alert:
        ident = args.get("alert")
        if not isinstance(ident, str) or not ident:
            raise CommandError("'alert' (an alert id or rule/subject) is required")
        for alert in self.engine.active.values():
            if ident in (alert.id, alert.key, alert.rule if not alert.subject else None):
                return alert
        raise CommandError(f"no active alert {ident[:80]!r}")

    def _rule_arg(self, args: dict[str, Any]) -> str:
        name = args.get("rule")
        if not isinstance(name, str) or name not in self.engine.rules:
            known = ", ".join(sorted(self.engine.rules))
            raise CommandError(f"'rule' must name a rule (known: {known})")
        return name

    def ack(self, args: dict[str, Any]) -> dict[str, Any]:
        with self.engine.lock:
            alert = self._find(args)
            self.engine.acknowledge(alert)
            return {"alert": alert.id, "state": alert.state}

    def snooze(self, args: dict[str, Any]) -> dict[str, Any]:
        seconds = args.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) \
                or not 0 < seconds <= 30 * 86400:
            raise CommandError("'seconds' must be a number in (0, 2592000]")
        with self.engine.lock:
            alert = self._find(args)
            self.engine.snooze(alert, float(seconds))
            return {"alert": alert.id, "state": alert.state,
                    "snoozed_until": alert.snoozed_until}

    def enable(self, args: dict[str, Any], enabled: bool) -> dict[str, Any]:
        with self.engine.lock:
            name = self._rule_arg(args)
            self.engine.set_enabled(name, enabled)
            return {"rule": name, "enabled": enabled}

    def set_threshold(self, args: dict[str, Any]) -> dict[str, Any]:
        value = args.get("threshold")
        resolve = args.get("resolve_threshold")
        for v, key in ((value, "threshold"), (resolve, "resolve_threshold")):
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)
                                  or not math.isfinite(v)):
                raise CommandError(f"'{key}' must be a finite number")
        if value is None:
            raise CommandError("'threshold' is required")
        with self.engine.lock:
            name = self._rule_arg(args)
            rule = self.engine.set_threshold(
                name, float(value), None if resolve is None else float(resolve))
            return {"rule": name, "threshold": rule.threshold,
                    "resolve_threshold": rule.resolve_threshold}

    def list(self, args: dict[str, Any]) -> dict[str, Any]:
        engine = self.engine
        with engine.lock:
            return {
                "alerts": [msgspec.to_builtins(engine.payload(a)) for a in engine.active.values()],
                "rules": [{**dataclasses.asdict(rule), "incident": incident_group(rule)}
                          for rule in map(engine.rule, engine.rules)],
            }
