"""The parts that get windows and alerts off the device, built from the configuration: the
outbox and its sink, the publisher (``Delivery``), the alert engine and its sink
(``make_alerting``). ``edgewatch.agent.app.build_agent`` decides which parts an agent gets
and in which order its windows reach them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from edgewatch import FEATURE_SET_VERSION, __version__
from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery.sinks import JsonlSink
from edgewatch.agent.delivery.status import Manifest, config_sha256, deployment_fields
from edgewatch.agent.records import SignalChange
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.clock import Clock, SystemClock
from edgewatch.config.agent import AgentConfig
from edgewatch.contracts import Alert, Summary, SummaryV1, compact
from edgewatch.contracts.topics import Topics
from edgewatch.contracts.vocabulary import SEVERITY_RANK
from edgewatch.errors import StatsError

if TYPE_CHECKING:  # a replay without --publish needs neither (nor paho)
    from edgewatch.agent.delivery.outbox import Outbox
    from edgewatch.agent.delivery.publisher import Publisher

log = logging.getLogger(__name__)


def wire_summary(payload: dict[str, Any]) -> Summary:
    """A queued summary payload as schema 2 (rows queued as schema 1 by an older agent are
    compacted)."""
    try:
        message = msgspec.convert(payload, Summary | SummaryV1)
    except msgspec.ValidationError as exc:
        raise StatsError(f"queued summary out of its contract: {exc}") from exc
    return compact(message) if isinstance(message, SummaryV1) else message


def summary_merger(reference: ReferenceProfile) -> Any:
    """Merge two queued summary payloads exactly (for outbox compaction): schema 2 (or 1)
    in, schema 2 out, keeping the worse drift verdict of the two."""

    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        wa, wb = wire_summary(a), wire_summary(b)
        first = WindowSummary.from_wire(wa, reference)
        first.merge(WindowSummary.from_wire(wb, reference))
        worst = max((wa.drift, wb.drift),
                    key=lambda d: SEVERITY_RANK.get(d.severity if d else "ok", 0))
        merged = first.to_wire()
        merged.drift = worst
        out: dict[str, Any] = msgspec.to_builtins(merged)
        return out

    return merge


class OutboxSink:
    """Monitor sink: commits each window to the outbox, with the outbox's loss report."""

    def __init__(self, outbox: Outbox, publisher: Publisher | None = None) -> None:
        self.outbox = outbox
        self.publisher = publisher

    def __call__(self, summary: WindowSummary) -> None:
        stats = self.outbox.stats()
        state: dict[str, Any] = {"pending": stats.pending, "in_memory": stats.in_memory}
        if stats.degraded:
            state["degraded"] = stats.degraded
        summary.extra["outbox"] = state  # a verdict like drift: sinks after this one see it
        self.outbox.put("summary", msgspec.to_builtins(summary.to_wire()),
                        window_start=summary.start, window_end=summary.end, attach_loss=True)
        if self.publisher is not None:
            self.publisher.wake()


class AlertSink:
    """Monitor sink: evaluates the alert rules on each judged window.

    Alerts go to the outbox with the highest priority and to any extra outputs (the
    replay's JSON lines as ``{"type": "alert", ...}``)."""

    def __init__(self, engine: AlertEngine) -> None:
        self.engine = engine

    def __call__(self, summary: WindowSummary) -> None:
        self.engine.evaluate(summary.to_dict())

    def signal(self, change: SignalChange) -> None:
        """The no-signal fast path (monitor thread): fire or resolve no-signal alerts now."""
        self.engine.signal(change)


def make_alerting(cfg: AgentConfig, *, model_sha256: str, outbox: Outbox | None,
                  publisher: Publisher | None, lines: JsonlSink | None,
                  commands: CommandRouter | None,
                  on_alert: Callable[[Alert], None] | None = None) -> AlertSink | None:
    """The alert engine with its outputs, or None when alerts are disabled. ``on_alert``
    hears every alert message too (evidence capture), after the other outputs."""
    if not cfg.alerts.enabled:
        return None

    def emit(alert: Alert) -> None:
        payload: dict[str, Any] = msgspec.to_builtins(alert)
        if lines is not None:
            lines.write({"type": "alert", **payload})
        if outbox is not None:
            outbox.put("alert", payload, window_start=alert.window.start,
                       window_end=alert.window.end)
        if publisher is not None:
            publisher.wake()
        if on_alert is not None:
            on_alert(alert)

    engine = AlertEngine(cfg.alerts, AlertStore(cfg.alerts.state_path), emit,
                         model_sha256=model_sha256)
    if commands is not None:
        engine.register(commands)
    return AlertSink(engine)


class Delivery:
    """Outbox plus (optionally) a running publisher, for one agent process."""

    def __init__(self, cfg: AgentConfig, reference: ReferenceProfile, *, device: str,
                 model_name: str, model_sha256: str, config_path: str | Path | None,
                 publish: bool, clock: Clock | None = None) -> None:
        from edgewatch.agent.delivery.outbox import Outbox
        from edgewatch.agent.delivery.publisher import Publisher
        from edgewatch.agent.delivery.wire import backlog_encoder

        self.clock = clock or SystemClock()
        self.boot_id = uuid.uuid4().hex
        self.outbox = Outbox(
            cfg.outbox.path, device=device, boot_id=self.boot_id, clock=self.clock,
            max_bytes=int(cfg.outbox.max_mb * 2**20),
            max_age_s=cfg.outbox.max_age_days * 86400.0, merge=summary_merger(reference),
            wire=backlog_encoder(cfg.mqtt) if publish else None,
        )
        self.topics = Topics(cfg.mqtt.topic_root, cfg.device.fleet, device)
        self.manifest = Manifest(
            device=device, fleet=cfg.device.fleet, boot_id=self.boot_id,
            started=self.clock.now(), model_name=model_name, model_sha256=model_sha256,
            adapter=cfg.model.adapter, reference_id=reference.id,
            config_sha256=config_sha256(config_path), agent_version=__version__,
            feature_set_version=FEATURE_SET_VERSION, **deployment_fields(cfg.deployment),
        )
        self.commands = CommandRouter(cfg.alerts.command_token)
        self.publisher = Publisher(
            cfg.mqtt, self.outbox, self.topics, self.manifest, clock=self.clock,
            commands=self.commands, reference=reference.to_contract(device),
        ) if publish else None
        self.sink = OutboxSink(self.outbox, self.publisher)

    def start(self) -> None:
        if self.publisher is not None:
            self.publisher.start()

    def close(self, drain_timeout: float = 0.0, *, only_connected: bool = False) -> bool:
        """Stop publishing (after draining up to ``drain_timeout``, not at all while
        disconnected when ``only_connected``) and close the outbox."""
        drained = True
        if self.publisher is not None:
            if drain_timeout > 0:
                drained = self.publisher.wait_drained(drain_timeout,
                                                      only_connected=only_connected)
            self.publisher.stop()
        self.outbox.close()
        return drained
