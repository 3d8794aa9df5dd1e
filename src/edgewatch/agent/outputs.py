"""Where the agent's closed windows go, in order: the application's sink, JSON lines, the
outbox and its publisher, the alert rules; with what they own (delivery, alert state,
evidence capture) closed in the right order."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgewatch.agent.delivery.assembly import AlertSink, Delivery
    from edgewatch.agent.delivery.sinks import JsonlSink
    from edgewatch.agent.evidence.capture import EvidenceCapture
    from edgewatch.agent.records import SignalChange
    from edgewatch.agent.window.monitor_parts import Sink
    from edgewatch.agent.window.summary import WindowSummary

log = logging.getLogger(__name__)


class AgentOutputs:
    """Where the agent's windows go, in this order: the application's sink, JSON lines, the
    outbox (published by the delivery), the alert rules (which see the outbox's state).

    A sink itself; owns the delivery (outbox and publisher), the alert engine and the
    evidence capture (which the monitor feeds frames and the alert engine alerts)."""

    def __init__(self, *, sink: Sink | None = None, lines: JsonlSink | None = None,
                 delivery: Delivery | None = None, alerting: AlertSink | None = None,
                 evidence: EvidenceCapture | None = None) -> None:
        self.lines = lines
        self.delivery = delivery
        self.alerting = alerting
        self.evidence = evidence
        outbox = delivery.sink if delivery is not None else None
        self.sinks: tuple[Sink, ...] = tuple(
            s for s in (sink, lines, outbox, alerting) if s is not None)

    def __call__(self, summary: WindowSummary) -> None:
        for sink in self.sinks:
            sink(summary)

    def signal(self, change: SignalChange) -> None:
        """The no-signal fast path (monitor thread): the alert rules fire or resolve their
        no-signal alert now, which goes out ahead of everything queued."""
        if self.alerting is not None:
            self.alerting.signal(change)

    def start(self) -> None:
        """Start publishing (when there is a publisher)."""
        if self.delivery is not None:
            self.delivery.start()

    def close(self, drain_timeout: float = 0.0, *, only_connected: bool = False) -> bool:
        """Close the JSON lines, then stop publishing (after draining the outbox for up to
        ``drain_timeout`` seconds; with ``only_connected``, not while disconnected) and close
        the outbox and the alert state. False when the outbox did not drain in time (what is
        left goes out on the next start)."""
        if self.lines is not None:
            self.lines.close()
        if self.evidence is not None:
            self.evidence.close()
            totals = self.evidence.totals
            if any(totals.values()):
                log.info("evidence: %s", ", ".join(f"{k} {v}" for k, v in totals.items()))
        drained = True if self.delivery is None else self.delivery.close(
            drain_timeout, only_connected=only_connected)
        if self.alerting is not None:
            self.alerting.engine.store.close()
        return drained
