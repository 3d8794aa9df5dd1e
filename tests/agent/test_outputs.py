"""The agent's window outputs: each closed window to every output in order; closing closes
what they own, the alert state last."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from edgewatch.agent.outputs import AgentOutputs


class Alerts:
    """An alert sink that records what it sees and when its state store is closed."""

    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen
        self.engine = SimpleNamespace(store=SimpleNamespace(close=lambda: seen.append("closed")))

    def __call__(self, summary: Any) -> None:
        self.seen.append(("alerts", summary))

    def signal(self, change: Any) -> None:
        self.seen.append(("signal", change))


def test_windows_reach_the_application_before_the_alert_rules_and_close_closes_the_state(
) -> None:
    seen: list[Any] = []
    window: Any = object()
    change: Any = object()
    alerts: Any = Alerts(seen)  # the AlertSink of an alert engine, its store included
    outputs = AgentOutputs(sink=lambda s: seen.append(("app", s)), alerting=alerts)
    outputs(window)
    outputs.signal(change)
    assert outputs.close() is True  # nothing to drain without a delivery
    assert seen == [("app", window), ("alerts", window), ("signal", change), "closed"]


def test_without_outputs_a_window_goes_nowhere_and_closing_drains_nothing() -> None:
    outputs = AgentOutputs()
    window: Any = object()
    outputs(window)
    assert outputs.sinks == () and outputs.close() is True
