"""A real device for collector tests: the agent's outbox, publisher, alert engine (a
temperature rule) and command router, connected to a real broker; it can go offline (a
clean shutdown: retained 'offline') and come back (a new connection, same device and boot,
same alert state and command memory), as an agent that lost its network does."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import msgspec

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery.outbox import Outbox
from edgewatch.agent.delivery.publisher import Publisher
from edgewatch.agent.delivery.status import Manifest
from edgewatch.clock import SystemClock
from edgewatch.config.agent import AlertsConfig, RuleConfig
from edgewatch.config.delivery import MqttConfig
from edgewatch.contracts import Alert
from edgewatch.contracts.topics import Topics
from support.broker import MosquittoBroker


class AgentDevice:
    """One device (``fleet``/``device``) of real agent parts."""

    def __init__(self, broker: MosquittoBroker, workdir: Path, *, fleet: str = "f1",
                 device: str = "cam-1", token: str = "", root: str = "edgewatch/v1") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.broker = broker
        self.boot_id = uuid.uuid4().hex
        self.clock = SystemClock()
        self.outbox = Outbox(workdir / "outbox.db", device=device, boot_id=self.boot_id,
                             clock=self.clock, max_bytes=8 * 2**20, max_age_s=86400.0,
                             merge=None)
        self.topics = Topics(root, fleet, device)
        self.manifest = Manifest(device=device, fleet=fleet, boot_id=self.boot_id,
                                 started=self.clock.now(), model_name="m",
                                 model_sha256="ab" * 32, adapter="ssd", reference_id="r1",
                                 config_sha256="")
        self.cfg = MqttConfig(enabled=True, host=broker.host, port=broker.port,
                              encoding="json", topic_root=root, reconnect_min_s=0.05,
                              reconnect_max_s=0.5)
        rules = [RuleConfig("temperature", "temperature", ">=", 85.0, "critical", 1, 1, 80.0)]
        self.router = CommandRouter(token)
        self.engine = AlertEngine(AlertsConfig(rules=rules), AlertStore(workdir / "alerts.db"),
                                  self._emit, model_sha256="ab" * 32)
        self.engine.register(self.router)
        self.publisher: Publisher | None = None
        self.t = time.time() - 60.0

    def _emit(self, alert: Alert) -> None:
        self.outbox.put("alert", msgspec.to_builtins(alert), window_start=alert.window.start,
                        window_end=alert.window.end)
        if self.publisher is not None:
            self.publisher.wake()

    def online(self, timeout: float = 15.0) -> AgentDevice:
        """Connect (a new connection, as after a network outage)."""
        assert self.publisher is None, "already online"
        self.publisher = Publisher(self.cfg, self.outbox, self.topics, self.manifest,
                                   commands=self.router)
        self.publisher.start()
        assert self.publisher.connected.wait(timeout), "the device did not connect"
        return self

    def offline(self) -> None:
        """A clean shutdown of the connection: the retained status says 'offline'."""
        assert self.publisher is not None
        self.publisher.wait_drained(10, only_connected=True)
        self.publisher.stop()
        self.publisher = None

    def window(self, celsius: float) -> None:
        """Evaluate one 10 s window with this CPU temperature."""
        self.engine.evaluate({"window": {"start": self.t, "end": self.t + 10.0},
                              "resources": {"temperatures_c": {"cpu": celsius}}})
        self.t += 10.0

    def drained(self, timeout: float = 10.0) -> bool:
        return self.publisher is not None and self.publisher.wait_drained(timeout)

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher = None
        self.outbox.close()
