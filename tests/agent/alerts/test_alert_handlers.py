"""The operators' alert commands (edgewatch.agent.alerts.handlers), called directly on a
real engine with its SQLite state: arguments checked, transitions carried out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.handlers import AlertCommands
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.commands import CommandError, CommandRouter
from edgewatch.config.agent import AlertsConfig, RuleConfig


@pytest.fixture
def engine(tmp_path: Path) -> AlertEngine:
    rules = [RuleConfig("temperature", "temperature", ">=", 85.0, "critical", 1, 1, 80.0)]
    engine = AlertEngine(AlertsConfig(rules=rules), AlertStore(tmp_path / "alerts.db"),
                         lambda _alert: None)
    engine.evaluate({"window": {"start": 1000.0, "end": 1010.0},
                     "resources": {"temperatures_c": {"cpu": 91.0}}})
    return engine


def test_register_adds_every_alert_command(engine: AlertEngine) -> None:
    router = CommandRouter()
    AlertCommands(engine).register(router)
    assert set(router.handlers) == {"ping", "ack", "snooze", "disable", "enable",
                                    "set-threshold", "list"}


def test_ack_finds_the_alert_by_id_key_or_rule(engine: AlertEngine) -> None:
    [alert] = engine.active.values()
    commands = AlertCommands(engine)
    assert commands.ack({"alert": alert.id}) == {"alert": alert.id, "state": "acknowledged"}
    assert commands.ack({"alert": alert.key})["alert"] == alert.id
    with pytest.raises(CommandError, match=r"no active alert 'nothing'"):
        commands.ack({"alert": "nothing"})
    with pytest.raises(CommandError, match=r"'alert' .* is required"):
        commands.ack({})


@pytest.mark.parametrize("seconds", [0, -5, 30 * 86400 + 1, True, "60", None])
def test_snooze_refuses_a_bad_duration(engine: AlertEngine, seconds: Any) -> None:
    [alert] = engine.active.values()
    with pytest.raises(CommandError, match=r"'seconds' must be a number in \(0, 2592000\]"):
        AlertCommands(engine).snooze({"alert": alert.id, "seconds": seconds})
    assert alert.state == "firing"


def test_snooze_sets_the_end_of_the_snooze(engine: AlertEngine) -> None:
    [alert] = engine.active.values()
    out = AlertCommands(engine).snooze({"alert": alert.id, "seconds": 600})
    assert out["state"] == "snoozed" and out["snoozed_until"] == alert.snoozed_until > 0


def test_enable_disable_and_set_threshold_name_a_known_rule(engine: AlertEngine) -> None:
    commands = AlertCommands(engine)
    assert commands.enable({"rule": "temperature"}, False) == {"rule": "temperature",
                                                                "enabled": False}
    assert not engine.rule("temperature").enabled
    with pytest.raises(CommandError, match=r"'rule' must name a rule \(known: temperature\)"):
        commands.enable({"rule": "humidity"}, True)
    out = commands.set_threshold({"rule": "temperature", "threshold": 90,
                                  "resolve_threshold": 82})
    assert out == {"rule": "temperature", "threshold": 90.0, "resolve_threshold": 82.0}
    assert engine.rule("temperature").threshold == 90.0


@pytest.mark.parametrize(("args", "message"), [
    ({"rule": "temperature"}, "'threshold' is required"),
    ({"rule": "temperature", "threshold": float("nan")}, "'threshold' must be a finite"),
    ({"rule": "temperature", "threshold": True}, "'threshold' must be a finite"),
    ({"rule": "temperature", "threshold": 90, "resolve_threshold": "80"},
     "'resolve_threshold' must be a finite"),
])
def test_set_threshold_refuses_bad_numbers(engine: AlertEngine, args: dict[str, Any],
                                           message: str) -> None:
    with pytest.raises(CommandError, match=message):
        AlertCommands(engine).set_threshold(args)
    assert engine.rule("temperature").threshold == 85.0


def test_list_returns_active_alerts_and_effective_rules(engine: AlertEngine) -> None:
    [alert] = engine.active.values()
    out = AlertCommands(engine).list({})
    assert [a["id"] for a in out["alerts"]] == [alert.id]
    assert out["alerts"][0]["state"] == "firing"
    assert [r["name"] for r in out["rules"]] == ["temperature"]
    assert out["rules"][0]["threshold"] == 85.0
