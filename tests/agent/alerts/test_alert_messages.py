"""What an alert says (edgewatch.agent.alerts.messages) and what a rule can watch
(edgewatch.agent.alerts.rule_metrics), on hand-made window summaries."""

from __future__ import annotations

import operator
from typing import Any

import pytest

from edgewatch.agent.alerts.messages import (
    NEGATION,
    alert_message,
    describe,
    fired,
    resolved,
)
from edgewatch.agent.alerts.rule_metrics import METRICS, observe
from edgewatch.agent.alerts.state import Alert
from edgewatch.config.agent import RuleConfig
from edgewatch.contracts import codec
from edgewatch.contracts.vocabulary import QUALITY_FAULTS

T0 = 1767225600.0  # 2026-01-01 00:00:00 UTC
HOT = RuleConfig("temperature", "temperature", ">=", 85.0, "critical", 1, 1, 80.0)


def incident(state: str = "firing", snoozed_until: float = 0.0) -> Alert:
    return Alert(key="temperature/cpu", id="a1", rule="temperature", subject="cpu",
                 metric="temperature", severity="critical", state=state, since=T0,
                 observed=91.0, window_start=T0, window_end=T0 + 10.0, last_notified=T0,
                 snoozed_until=snoozed_until, message="temperature: too hot")


# --------------------------------------------------------------------------- sentences


def test_negation_is_the_expected_side_of_each_comparison() -> None:
    compare = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
    assert set(NEGATION) == set(compare)
    for op, expected in NEGATION.items():
        assert NEGATION[expected] == op
        for value in (-1.0, 0.0, 1.0):
            assert compare[op](value, 0.0) != compare[expected](value, 0.0)


def test_a_firing_sentence_says_what_when_what_was_expected_and_how_long() -> None:
    text = fired(HOT, "cpu", 91.0, {"window": {"start": T0, "end": T0 + 10.0}})
    assert text == ("temperature: temperature cpu = 91 in the window 2026-01-01 00:00:00-"
                    "00:00:10 UTC, expected < 85 (hottest reading per sensor group "
                    "(degrees C)), for 1 window(s)")
    assert describe(HOT, "", 91.23456) == "temperature = 91.23"
    assert resolved("temperature", "back below 80") == "temperature: resolved, back below 80"


def test_a_drift_sentence_gives_the_first_reason() -> None:
    rule = RuleConfig("drift", "drift.severity", ">=", 2.0, "critical", 1, 2)
    summary = {"window": {"start": T0, "end": T0 + 10.0},
               "drift": {"reasons": ["contrast: drifted", "noise: warning"]}}
    assert fired(rule, "", 2.0, summary).endswith("for 1 window(s); contrast: drifted")
    assert "reason" not in fired(HOT, "cpu", 91.0, summary)


def test_a_feature_drift_sentence_gives_that_features_reason_only() -> None:
    rule = RuleConfig("feature-drift", "drift.feature", ">=", 8.0, "warning", 2, 2, 4.0)
    summary = {"window": {"start": T0, "end": T0 + 10.0},
               "drift": {"reasons": ["entropy: drifted: shifted 12.0 reference SDs",
                                     "brightness: drifted: shifted 9.1 reference SDs"]}}
    text = fired(rule, "brightness", 9.1, summary)
    assert text.endswith("; brightness: drifted: shifted 9.1 reference SDs")
    assert "entropy" not in text
    alone = {**summary, "drift": {"reasons": ["entropy: drifted: shifted 12.0 reference SDs"]}}
    assert "entropy" not in fired(rule, "brightness", 9.1, alone)  # no reason of its own


def test_the_alert_message_carries_the_state_and_decodes_as_a_contract() -> None:
    message = alert_message(incident(), HOT, updated=T0 + 20.0, model_sha256="ab" * 32)
    assert (message.id, message.state, message.subject, message.observed) == (
        "a1", "firing", "cpu", 91.0)
    assert message.expected is not None
    assert (message.expected.op, message.expected.value) == ("<", 85.0)
    assert message.snoozed_until is None
    assert codec.decode("alert", codec.encode(message)) == message


def test_snooze_end_only_while_snoozed_and_no_expectation_without_the_rule() -> None:
    snoozed = alert_message(incident("snoozed", T0 + 600.0), None, updated=T0,
                            model_sha256="", renotify=True)
    assert snoozed.snoozed_until == T0 + 600.0 and snoozed.expected is None and snoozed.renotify
    acked = alert_message(incident("acknowledged", T0 + 600.0), HOT, updated=T0,
                          model_sha256="")
    assert acked.snoozed_until is None


# --------------------------------------------------------------------------- metrics


def window(**sections: Any) -> dict[str, Any]:
    return {"window": {"start": T0, "end": T0 + 10.0}, **sections}


def test_every_metric_has_a_description_and_a_rule_may_name_it() -> None:
    for name, (description, _) in METRICS.items():
        assert description
        RuleConfig("r", name).validate()
    with pytest.raises(ValueError, match="metric 'humidity'"):
        RuleConfig("r", "humidity").validate()


def test_a_missing_section_yields_nothing() -> None:
    assert {name: observe(name, {}) for name in METRICS} == {name: {} for name in METRICS}


def test_metrics_read_their_values() -> None:
    s = window(
        frames={"seen": 250, "monitored": 200},
        quality={"frozen": 50, "black": 2, "weather": 9},
        drift={"severity": "drift", "score": 6.5,
               "features": {"contrast": {"effect": 6.5}, "classes": {"effect": None}}},
        anomaly={"rate": 0.02},
        latency={"total_ms": {"p95": 41.0}},
        resources={"process_cpu_percent": 55.0, "memory_percent": 40.0, "disk_percent": 91,
                   "temperatures_c": {"cpu": 71.0, "gpu": "n/a"}},
        outbox={"pending": 12},
    )
    assert observe("fps", s) == {"": 25.0}
    quality = observe("quality", s)
    assert set(quality) == set(QUALITY_FAULTS)
    assert quality["frozen"] == 0.25 and quality["black"] == 0.01 and quality["blurred"] == 0
    assert observe("drift.severity", s) == {"": 2.0}
    assert observe("drift.score", s) == {"": 6.5}
    assert observe("drift.feature", s) == {"contrast": 6.5}
    assert observe("anomaly.rate", s) == {"": 0.02}
    assert observe("latency.p95", s) == {"": 41.0}
    assert observe("cpu", s) == {"": 55.0} and observe("memory", s) == {"": 40.0}
    assert observe("disk", s) == {"": 91.0}
    assert observe("temperature", s) == {"cpu": 71.0}
    assert observe("outbox.pending", s) == {"": 12.0}


def test_an_insufficient_drift_verdict_and_an_empty_window_yield_nothing() -> None:
    assert observe("drift.severity", window(drift={"severity": "ok", "insufficient": True})) == {}
    assert observe("quality", window(frames={"seen": 0}, quality={"black": 1})) == {}
    assert observe("fps", {"window": {"start": T0, "end": T0}, "frames": {"seen": 5}}) == {}
