"""Stand-in devices for the collector's tests: an agent's alert engine emitting what its
outbox would publish (``Device``), and an agent answering commands over MQTT
(``StandInDevice``), both ``cam-1`` of fleet ``f1``."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.commands import CommandRouter
from edgewatch.config.agent import AlertsConfig, RuleConfig
from edgewatch.contracts import Alert, CommandResult, codec
from support.broker import MosquittoBroker

ROOT = "edgewatch/v1"
FLEET = "f1"
DEVICE = "cam-1"


class Device:
    """The device-side alert engine with a temperature rule, emitting outbox-like messages."""

    def __init__(self, path: Path) -> None:
        rules = [RuleConfig("temperature", "temperature", ">=", 85.0, "critical", 1, 1, 80.0)]
        self.sent: list[Alert] = []
        self.seq = 0
        self.engine = AlertEngine(AlertsConfig(rules=rules), AlertStore(path), self._emit,
                                  model_sha256="abc")
        self.commands = CommandRouter()
        self.engine.register(self.commands)
        self.t = time.time() - 60.0

    def _emit(self, alert: Alert) -> None:
        self.seq += 1
        self.sent.append(msgspec.structs.replace(alert, device=DEVICE, boot_id="boot-1",
                                                 seq=self.seq))

    def window(self, celsius: float) -> Alert:
        """Evaluate one 10 s window; the payload it emitted (the last one sent)."""
        before = len(self.sent)
        self.engine.evaluate({"window": {"start": self.t, "end": self.t + 10.0},
                              "resources": {"temperatures_c": {"cpu": celsius}}})
        self.t += 10.0
        assert len(self.sent) == before + 1, "expected the window to emit one alert message"
        return self.sent[-1]

    def command(self, name: str, **args: Any) -> Alert:
        result = self.commands(name, json.dumps(args).encode())
        assert result.ok, result
        return self.sent[-1]


class StandInDevice:
    """Subscribes to its command topic like an agent and answers through the real
    CommandRouter, after ``delay`` (the agent answers through its outbox)."""

    def __init__(self, broker: MosquittoBroker, router: CommandRouter, *,
                 delay: float = 0.2, noise: bool = False) -> None:
        self.router, self.delay, self.noise = router, delay, noise
        self.seq = 0
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{DEVICE}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{ROOT}/{FLEET}/{DEVICE}/cmd/+", 1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(5), "stand-in device did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        name = msg.topic.rsplit("/", 1)[-1]
        self.commands.append((name, json.loads(msg.payload)))
        threading.Timer(self.delay, self._answer, (name, msg.payload)).start()

    def _publish(self, result: CommandResult) -> None:
        self.seq += 1
        result = msgspec.structs.replace(result, device=DEVICE, boot_id="boot-1", seq=self.seq)
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = codec.MSGPACK
        self.client.publish(f"{ROOT}/{FLEET}/{DEVICE}/cmd_result", codec.encode(result),
                            qos=1, properties=props)

    def _answer(self, name: str, raw: bytes) -> None:
        if self.noise:  # another operator's answer on the same topic, in JSON
            self.client.publish(f"{ROOT}/{FLEET}/{DEVICE}/cmd_result", json.dumps(
                {"schema": "edgewatch.cmd_result/1", "command": name, "id": "someone-else",
                 "ok": True, "device": DEVICE, "boot_id": "boot-1", "seq": 99}), qos=1)
        self._publish(self.router(name, raw))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
