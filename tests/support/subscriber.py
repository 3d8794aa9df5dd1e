"""A subscriber that records what agents publish, decoded as the collector decodes it."""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgewatch.contracts import Rejected, codec


class Collector:
    """A QoS 1 subscriber with a persistent session (the broker queues for it while it is
    away), recording every message decoded as the collector decodes it (codec.decode with
    the message's content type), and the raw payloads."""

    def __init__(self, port: int, topic: str = "edgewatch/v1/#",
                 client_id: str = "test-collector") -> None:
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.raw: list[tuple[str, bytes, str | None]] = []  # topic, payload, content type
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        ctype = getattr(msg.properties, "ContentType", None) if msg.properties else None
        leaf = msg.topic.rsplit("/", 1)[-1]
        payload: dict[str, Any]
        if "/cmd/" in msg.topic:  # the commands this test itself sends
            payload = {"raw": msg.payload.decode("utf-8", "replace")}
        else:
            try:
                payload = msgspec.to_builtins(codec.decode(leaf, msg.payload, ctype))
            except Rejected as exc:
                payload = {"rejected": str(exc)}
        with self.lock:
            self.messages.append((msg.topic, payload, bool(msg.retain)))
            self.raw.append((msg.topic, msg.payload, ctype))

    def wait_for_raw(self, leaf: str, n: int) -> list[tuple[str, bytes, bool]]:
        """(topic, payload, retained) of the first n messages on leaf."""
        self.wait_for(leaf, n)
        with self.lock:
            return [(t, raw, retained) for (t, _, retained), (_, raw, _) in
                    zip(self.messages, self.raw) if t.endswith("/" + leaf)][:n]

    def content_types(self, leaf: str) -> set[str | None]:
        with self.lock:
            return {c for t, _, c in self.raw if t.endswith("/" + leaf)}

    def of(self, leaf: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith("/" + leaf)]

    def wait_for(self, leaf: str, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(leaf)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.of(leaf))} of {n} {leaf} messages arrived")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
