"""Alert rules, state transitions, persistence and commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery.assembly import OutboxSink, make_alerting
from edgewatch.agent.delivery.outbox import Outbox
from edgewatch.agent.delivery.sinks import Tee
from edgewatch.agent.measure.frame import FrameMeasurer
from edgewatch.agent.measure.image import ImageFeatureExtractor
from edgewatch.agent.measure.outputs import OutputFeatureExtractor
from edgewatch.agent.records import Frame
from edgewatch.agent.window.reference import ReferenceBuilder
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.clock import ManualClock
from edgewatch.config.agent import AlertsConfig, RuleConfig, parse_config
from edgewatch.contracts import Alert, CommandResult, codec


def summary(t: float, severity: str = "ok", pending: int = 0) -> dict[str, Any]:
    return {
        "window": {"start": t, "end": t + 10.0},
        "frames": {"seen": 100, "monitored": 100},
        "drift": {"severity": severity, "score": 9.0 if severity == "drift" else 0.0,
                  "reasons": ["contrast: drifted: shifted 9.0 reference SDs (warning 2, "
                              "drift 4), adjusted p 1e-09 <= 0.01, 1 window(s) in a row"],
                  "features": {}},
        "outbox": {"pending": pending},
    }


class Harness:
    def __init__(self, path: Path, **cfg: Any) -> None:
        rules = [RuleConfig("drift", "drift.severity", ">=", 2.0, "critical", 1, 2),
                 RuleConfig("backlog", "outbox.pending", ">=", 100, "warning", 2, 1, 10.0)]
        self.cfg = AlertsConfig(rules=rules, **cfg)
        self.path = path
        self.sent: list[dict[str, Any]] = []
        self.router = CommandRouter()
        self.engine = self.make()

    def make(self) -> AlertEngine:
        engine = AlertEngine(self.cfg, AlertStore(self.path), self.emit, model_sha256="abc")
        engine.register(self.router)
        return engine

    def emit(self, alert: Alert) -> None:
        """Keep the alert as the collector decodes it (every bound checked)."""
        decoded = codec.decode("alert", codec.encode(alert))
        assert decoded == alert
        self.sent.append(msgspec.to_builtins(decoded))

    def run(self, *summaries: dict[str, Any]) -> list[str]:
        before = len(self.sent)
        for s in summaries:
            self.engine.evaluate(s)
        return [f"{a['rule']}:{a['state']}" + ("*" if a.get("renotify") else "")
                for a in self.sent[before:]]

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self.router(name, json.dumps(args).encode()))
        return result


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path / "alerts.db", renotify_s=30.0)


def test_fires_once_with_a_readable_sentence_and_resolves_with_hysteresis(h: Harness) -> None:
    assert h.run(summary(0)) == []
    assert h.run(summary(10, "drift"), summary(20, "drift")) == ["drift:firing"]
    alert = h.sent[-1]
    assert alert["schema"] == "edgewatch.alert/1" and alert["severity"] == "critical"
    assert alert["message"].startswith("drift: drift.severity = 2 in the window "
                                       "1970-01-01 00:00:10-00:00:20 UTC, expected < 2")
    assert "contrast: drifted" in alert["message"]
    assert alert["expected"] == {"op": "<", "value": 2.0}
    assert alert["window"] == {"start": 10.0, "end": 20.0} and alert["since"] == 10.0
    assert h.run(summary(30, "warning")) == []  # one clear window is not enough
    assert h.run(summary(40, "drift"), summary(50), summary(60)) == [
        "drift:firing*", "drift:resolved"]  # a reminder 30 s after the first notice
    assert h.sent[-1]["id"] == alert["id"]


def test_for_windows_and_resolve_threshold(h: Harness) -> None:
    assert h.run(summary(0, pending=500)) == []
    assert h.run(summary(10, pending=500)) == ["backlog:firing"]
    assert h.run(summary(20, pending=50)) == []  # below 100 but not below 10
    assert h.run(summary(30, pending=5)) == ["backlog:resolved"]


def test_renotify_snooze_and_ack(h: Harness) -> None:
    h.run(summary(0, "drift"))
    assert h.run(summary(10, "drift"), summary(20, "drift")) == []
    assert h.run(summary(30, "drift")) == ["drift:firing*"]  # 30 s after the first notice
    result = h.command("snooze", alert="drift/", seconds=25)
    assert result["ok"] and result["state"] == "snoozed"
    assert h.sent[-1]["state"] == "snoozed"
    assert h.run(summary(40, "drift"), summary(50, "drift")) == []
    assert h.run(summary(60, "drift")) == ["drift:firing*"]  # snooze over at 65 (end 70)
    assert h.command("ack", alert=h.sent[-1]["id"])["state"] == "acknowledged"
    assert h.run(*(summary(t, "drift") for t in range(70, 200, 10))) == []


def test_state_and_overrides_survive_a_restart(h: Harness) -> None:
    h.run(summary(0, "drift"))
    assert h.command("ack", alert="drift")["ok"]
    assert h.command("set-threshold", rule="backlog", threshold=1000)["threshold"] == 1000
    assert h.command("disable", rule="drift")["enabled"] is False
    assert h.sent[-1]["state"] == "resolved" and "disabled" in h.sent[-1]["message"]
    h.engine.store.close()
    again = h.make()
    assert again.rule("backlog").threshold == 1000 and not again.rule("drift").enabled
    assert h.run(summary(10, "drift"), summary(20, pending=500), summary(30, pending=500)) == []
    listed = h.command("list")
    assert listed["ok"] and listed["alerts"] == []
    assert {r["name"]: r["enabled"] for r in listed["rules"]} == {"drift": False,
                                                                  "backlog": True}


def test_active_alert_survives_a_restart(h: Harness) -> None:
    h.run(summary(0, "drift"))
    first = h.sent[-1]["id"]
    h.engine.store.close()
    h.engine = h.make()
    assert h.run(summary(10, "drift")) == []  # still the same incident, not a new one
    assert h.run(summary(20), summary(30)) == ["drift:resolved"]
    assert h.sent[-1]["id"] == first


@pytest.mark.parametrize(("name", "payload", "error"), [
    ("ack", b"{}", "'alert'"),
    ("ack", b'{"alert": "nope"}', "no active alert"),
    ("snooze", b'{"alert": "drift", "seconds": -5}', "'seconds'"),
    ("disable", b'{"rule": "nope"}', "'rule' must name a rule"),
    ("set-threshold", b'{"rule": "drift", "threshold": "high"}', "finite number"),
    ("reboot", b"{}", "unknown command 'reboot'"),
    ("ack", b"\xff\xfe", "not JSON"),
    ("ack", b"[1, 2]", "JSON object"),
    ("ack", b'{"schema": "other/9"}', "unsupported schema"),
])
def test_bad_commands_are_answered_with_an_error(h: Harness, name: str, payload: bytes,
                                                  error: str) -> None:
    result = h.router(name, payload)
    assert result.ok is False and result.error is not None and error in result.error


DEEP = 10_000


@pytest.mark.parametrize(("payload", "ident", "error"), [
    (b'{"id": "d1", "alert": ' + b"[" * DEEP + b"]" * DEEP + b"}", None,
     "a list holds a list"),
    (b'{"id": "d2", "alert": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}", None,
     "an argument is an object"),
    (b"[" * DEEP + b"]" * DEEP, None, "not a JSON object"),
    (b'{"id": "n1", "alert": "drift\\u0000"}', "n1", "NUL character"),
    (b'{"id": "n2", "al\\u0000ert": "drift"}', "n2", "NUL character"),
    (b'{"id": "n3\\u0000", "alert": "drift"}', None, "NUL character"),
    (b'{"id": 18446744073709551616, "alert": "drift"}', None, "out of range"),
    (b'{"id": -18446744073709551616, "alert": "drift"}', None, "out of range"),
    (b'{"id": 7, "alert": "drift", "seconds": 18446744073709551616}', 7, "out of range"),
])
def test_hostile_commands_are_refused_clearly_and_the_agent_goes_on(
        h: Harness, payload: bytes, ident: object, error: str) -> None:
    h.run(summary(0, "drift"))  # an active alert the command names
    result = h.router("ack", payload)
    assert result.ok is False and result.error is not None and error in result.error
    assert result.id == ident  # echoed when it can be read, so the sender's wait ends
    for word in ("internal error", "RecursionError", "Traceback"):
        assert word not in result.error
    assert codec.decode("cmd_result", codec.encode(result)) == result  # publishable
    assert h.sent[-1]["state"] == "firing"  # nothing was acknowledged
    assert h.command("ping")["ok"]
    assert h.command("ack", alert="drift")["state"] == "acknowledged"


def test_token_is_required_when_configured(tmp_path: Path) -> None:
    router = CommandRouter(token="s3cret")
    assert "unauthorised" in (router("ping", b"{}").error or "")
    assert router("ping", b'{"token": "s3cret"}').ok


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=12,
)
known = st.sampled_from(["ack", "snooze", "disable", "enable", "set-threshold", "list",
                         "ping"])
arguments = st.fixed_dictionaries({}, optional={
    "alert": st.one_of(st.text(max_size=12), st.sampled_from(["drift", "drift/"]),
                       json_values),
    "rule": st.one_of(st.sampled_from(["drift", "backlog"]), json_values),
    "seconds": st.one_of(st.floats(), st.integers(), json_values),
    "threshold": st.one_of(st.floats(), st.integers(), json_values),
    "id": json_values, "schema": st.one_of(st.just("edgewatch.cmd/1"), json_values),
})


@settings(max_examples=1200, deadline=None)
@given(name=st.one_of(known, st.text(max_size=30)),
       payload=st.one_of(arguments.map(lambda d: json.dumps(d).encode()),
                         st.binary(max_size=200), json_values.map(
                             lambda v: json.dumps(v).encode())))
def test_any_command_payload_is_answered(tmp_path_factory: pytest.TempPathFactory, name: str,
                                         payload: bytes) -> None:
    h = _shared(tmp_path_factory)
    result = h.router(name, payload)
    assert isinstance(result, CommandResult) and isinstance(result.ok, bool)
    assert result.ok or isinstance(result.error, str)
    assert "internal error" not in (result.error or "")
    # always publishable: the collector decodes it, every bound checked
    assert codec.decode("cmd_result", codec.encode(result)) == result
    json.dumps(msgspec.to_builtins(result), allow_nan=False)
    h.run(summary(0, "drift"))  # and the engine keeps working


_HARNESS: dict[str, Harness] = {}


def _shared(factory: pytest.TempPathFactory) -> Harness:
    if "h" not in _HARNESS:
        _HARNESS["h"] = Harness(factory.mktemp("fuzz") / "alerts.db")
    return _HARNESS["h"]


def test_the_backlog_rule_sees_the_outbox_through_the_agents_sinks(tmp_path: Path) -> None:
    """The outbox sink attaches the outbox state to the window before the alert sink
    judges it, as a drift verdict is attached before both."""
    b = ReferenceBuilder(bins=5)
    rng = np.random.default_rng(0)
    measurer = FrameMeasurer(ImageFeatureExtractor(32), OutputFeatureExtractor(0.5, 0.1))
    for i in range(20):
        image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        b.add(measurer(Frame(i, i / 10, image), None))
    reference = b.build(model_sha256="0" * 64, model_name="m", adapter="ssd",
                        analysis_width=32, source="synthetic", created=0.0)
    cfg = parse_config({"alerts": {"state_path": ":memory:", "rules": [
        {"name": "backlog", "metric": "outbox.pending", "op": ">=", "threshold": 2.0,
         "severity": "warning", "for_windows": 1}]}})
    outbox = Outbox(tmp_path / "outbox.db", device="cam", boot_id="b", clock=ManualClock(),
                    max_bytes=10 << 20, max_age_s=3600.0, merge=None)
    alerting = make_alerting(cfg, model_sha256="0" * 64, outbox=outbox, publisher=None,
                             lines=None, commands=None)
    assert alerting is not None
    sinks = Tee(OutboxSink(outbox), alerting)  # the order the agent wires them in
    for i in range(3):  # nothing is published: the queue grows by one per window
        sinks(WindowSummary.empty(reference, 10.0 * i, 10.0 * i + 10.0))
    alerts = [json.loads(r.body) for r in outbox.pending(100) if r.kind == "alert"]
    assert [(a["rule"], a["state"]) for a in alerts] == [("backlog", "firing")]
    assert "outbox.pending" in alerts[0]["message"]
    outbox.close()


def test_a_picture_back_before_its_window_closes_is_still_one_incident(tmp_path: Path) -> None:
    """Black from 45 s to 55 s, 10-s windows: no-signal fires at 48 s and the picture is
    back at 56 s, before the window 50-60 s (half of it black) closes and fires the quality
    rule for black. That alert joins the no-signal incident; one notification in all."""
    from edgewatch.agent.records import SignalChange

    sent: list[Alert] = []
    engine = AlertEngine(AlertsConfig(), AlertStore(tmp_path / "a.db"), sent.append)

    def window(start: float, black: int) -> dict[str, Any]:
        return {"window": {"start": start, "end": start + 10.0},
                "frames": {"seen": 100, "monitored": 25}, "quality": {"black": black}}

    engine.evaluate(window(40.0, 12))  # 12 of 25 black: below the rule's 0.5
    engine.signal(SignalChange(lost=True, fault="black", since=45.0, at=48.2))
    engine.signal(SignalChange(lost=False, fault="black", since=45.0, at=56.0))
    engine.evaluate(window(50.0, 13))  # 13 of 25: the quality rule fires for black
    engine.evaluate(window(60.0, 0))
    pages = [a for a in sent if a.state == "firing" and not a.incident]
    assert [(a.rule, a.subject) for a in pages] == [("no-signal", "black")]
    members = [(a.rule, a.subject, a.state, a.incident) for a in sent if a.incident]
    assert members == [("quality", "black", "firing", pages[0].id),
                       ("quality", "black", "resolved", pages[0].id)]
    assert [(a.rule, a.state) for a in sent][-1] == ("no-signal", "resolved")
    assert not engine.active
