"""The collector's side of incidents: members are stored but not routed (a real
Alertmanager sees only the lead, with the evidence and the members as annotations), old
alert messages still decode, and ``alerts list`` shows members under their lead (real
SQLite collector store)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.collector.operations import format_alerts, list_alerts
from edgewatch.collector.routing import ALERTMANAGER, AlertRouter
from edgewatch.collector.store import open_store
from edgewatch.config.agent import AlertsConfig, RuleConfig
from edgewatch.contracts import Alert, codec
from support.alertmanager import AlertmanagerServer, alertmanager_binary, ours

FLEET, T0 = "f1", 1767225600.0
RULES = [RuleConfig("drift", "drift.severity", ">=", 2.0, "critical", 1, 1),
         RuleConfig("anomalies", "anomaly.rate", ">=", 0.2, "warning", 1, 1, 0.05),
         RuleConfig("temperature", "temperature", ">=", 85.0, "warning", 1, 1)]


def window(t: float, drifted: bool, celsius: float = 60.0) -> dict[str, Any]:
    """A window summary shaped like the monitor's (drift features as ``to_dict`` has them)."""
    features = {
        "saturation": {"effect": 81.46, "p_adjusted": 0.0, "status": "drift", "streak": 2,
                       "drifted": True},
        "bright_fraction": {"effect": 2.12, "p_adjusted": 0.0, "status": "warning"},
        "box_aspect": {"effect": 0.28, "p_adjusted": 1.0, "status": "ok"},
    } if drifted else {"saturation": {"effect": 0.3, "status": "ok"}}
    return {"window": {"start": t, "end": t + 5.0, "windows": 1},
            "frames": {"seen": 50, "monitored": 50},
            "drift": {"severity": "drift" if drifted else "ok", "score": 81.46 if drifted else 0,
                      "reasons": ["saturation: drifted: shifted 81.5 reference SDs"]
                      if drifted else [], "features": features},
            "anomaly": {"rate": 1.0 if drifted else 0.0},
            "resources": {"temperatures_c": {"cpu": celsius}}}


class Device:
    def __init__(self, path: Path, name: str = "cam-1") -> None:
        self.name = name
        self.sent: list[Alert] = []
        self.engine = AlertEngine(AlertsConfig(rules=RULES, renotify_s=10.0),
                                  AlertStore(path), self.emit)

    def emit(self, alert: Alert) -> None:
        alert = msgspec.structs.replace(alert, device=self.name, boot_id="b",
                                        seq=len(self.sent) + 1)
        self.sent.append(codec.decode("alert", codec.encode(alert)))


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    if alertmanager_binary() is None:
        pytest.skip("Alertmanager is not installed (apt-get install prometheus-alertmanager)")
    with AlertmanagerServer(tmp_path / "alertmanager") as am:
        yield am


def test_members_are_not_routed_and_the_lead_carries_evidence_and_members(
        alertmanager: AlertmanagerServer, tmp_path: Path) -> None:
    device = Device(tmp_path / "alerts.db")
    router = AlertRouter(alertmanager_url=alertmanager.url)
    device.engine.evaluate(window(T0, drifted=False))
    device.engine.evaluate(window(T0 + 5, drifted=True))
    drift, anomalies = device.sent  # the same window: the more severe one leads
    assert (drift.rule, drift.incident, anomalies.rule, anomalies.incident) == (
        "drift", "", "anomalies", drift.id)
    for m in device.sent:
        router.route(FLEET, m)
    assert router.sent == {ALERTMANAGER: 1} and router.grouped == 1
    assert ours(alertmanager, anomalies.id) == []
    [lead] = ours(alertmanager, drift.id)
    assert lead["annotations"]["evidence"] == (
        "saturation 81.5 (drift), bright_fraction 2.12 (warning)")

    device.engine.evaluate(window(T0 + 10, drifted=True))
    device.engine.evaluate(window(T0 + 15, drifted=True))  # 10 s later: a reminder
    [reminder] = device.sent[2:]
    assert reminder.id == drift.id and reminder.renotify  # members get no reminders
    assert [(m.id, m.rule, m.state) for m in reminder.members] == [
        (anomalies.id, "anomalies", "firing")]
    router.route(FLEET, reminder)
    [lead] = ours(alertmanager, drift.id)
    assert lead["annotations"]["members"] == "anomalies = 1 (firing)"


def test_old_alert_messages_decode_and_new_ones_round_trip() -> None:
    old = {"schema": "edgewatch.alert/1", "id": "a1", "rule": "drift", "state": "firing",
           "severity": "critical", "window": {"start": T0, "end": T0 + 5}, "since": T0,
           "updated": T0 + 5}
    alert = codec.decode("alert", json.dumps(old).encode())
    assert (alert.group, alert.incident, alert.members, alert.evidence) == ("", "", [], [])
    new = {**old, "group": "drift", "incident": "lead-1",
           "members": [{"id": "m1", "rule": "anomalies", "severity": "warning",
                        "state": "firing", "observed": 1.0}],
           "evidence": [{"feature": "saturation", "effect": 81.5, "status": "drift",
                         "drifted": True}]}
    decoded = codec.decode("alert", json.dumps(new).encode())
    assert decoded.incident == "lead-1" and decoded.evidence[0].feature == "saturation"
    assert codec.decode("alert", codec.encode(decoded)) == decoded
    too_many = {**old, "evidence": [{"feature": f"f{i}"} for i in range(257)]}
    with pytest.raises(codec.Rejected):
        codec.decode("alert", json.dumps(too_many).encode())


def test_alerts_list_shows_members_under_their_lead(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'collector.db'}")
    try:
        cam1, cam2 = Device(tmp_path / "cam-1.db"), Device(tmp_path / "cam-2.db", "cam-2")
        cam1.engine.evaluate(window(T0, drifted=True))
        cam2.engine.evaluate(window(T0 + 100, drifted=False, celsius=90.0))  # newer, alone
        items = [("alert", FLEET, m.device, m, 2000.0) for m in cam1.sent + cam2.sent]
        assert store.ingest_many(items) == [True] * len(items)
        rows = list_alerts(store, None, True)
        assert [(a.device, a.rule) for a in rows] == [
            ("cam-1", "drift"), ("cam-1", "anomalies"), ("cam-2", "temperature")]
        lines = format_alerts(rows).splitlines()
        assert lines[3].split()[3] == "+" and lines[3].split()[4] == "anomalies"
        assert "1 of them member of an incident" in lines[-1]
    finally:
        store.close()
