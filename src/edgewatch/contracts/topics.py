"""MQTT topic names: ``<root>/<fleet>/<device>/<leaf>`` (see docs/mqtt.md)."""

from __future__ import annotations

import dataclasses
import re

from edgewatch.errors import ConfigError

LEAVES = ("status", "summary", "alert", "cmd_result", "reference", "evidence")
"""What devices publish (the collector subscribes to these leaves)."""
ADVISORY = "advisory"
"""The leaf the collector publishes a device's retrain advisory on (retained); not in
LEAVES: the collector does not read back what it publishes."""
UPDATE_STATUS = "update_status"
"""The leaf a device publishes its model update's lifecycle on (retained,
``edgewatch.update_status/1``); not in LEAVES: ``edgewatch model status`` reads the retained
messages from the broker, the collector's store does not keep them."""
UPDATE = "update"
"""The leaf (``update/<update id>``) the operator's push publishes model chunks on; not in
LEAVES: devices read it, they do not publish on it."""
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Device and fleet ids: the broker ACL pastes the user name into topic patterns, so an
id must be a plain topic level (see docs/mqtt-security.md)."""


def check_level(name: str, what: str) -> str:
    """A fleet or device id must match ID_PATTERN."""
    if not ID_PATTERN.fullmatch(name):
        raise ConfigError(f"{what} {name!r}: expected letters, digits, '.', '_' or '-' "
                          "(starting with a letter or digit, at most 128)")
    return name


@dataclasses.dataclass(frozen=True)
class Topics:
    root: str
    fleet: str
    device: str

    def __post_init__(self) -> None:
        check_level(self.fleet, "device.fleet")
        check_level(self.device, "device.id")

    @property
    def base(self) -> str:
        return f"{self.root}/{self.fleet}/{self.device}"

    @property
    def status(self) -> str:
        return self.for_kind("status")

    @property
    def cmd_result(self) -> str:
        return self.for_kind("cmd_result")

    @property
    def commands(self) -> str:
        """Subscription filter for every command addressed to this device."""
        return f"{self.base}/cmd/+"

    @property
    def evidence(self) -> str:
        """Chunks of evidence files the device sends when asked (``evidence.send``)."""
        return f"{self.base}/evidence"

    @property
    def updates(self) -> str:
        """Subscription filter for the chunks of model updates pushed to this device."""
        return f"{self.base}/{UPDATE}/+"

    def update(self, update_id: str) -> str:
        """The chunks of one pushed model update (published by the operator's push)."""
        return f"{self.base}/{UPDATE}/{update_id}"

    @property
    def advisory(self) -> str:
        """The device's retrain advisory, published by the collector (retained)."""
        return f"{self.base}/{ADVISORY}"

    def cmd(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    @property
    def update_status(self) -> str:
        """The device's model update lifecycle (retained)."""
        return f"{self.base}/{UPDATE_STATUS}"

    def for_kind(self, kind: str) -> str:
        """Topic of an outbox message kind ('summary', 'alert', 'status', 'cmd_result')."""
        if kind not in LEAVES:
            raise ValueError(f"no topic for message kind {kind!r}")
        return f"{self.base}/{kind}"


def parse(topic: str, root: str) -> tuple[str, str, str] | None:
    """(fleet, device, leaf) of a topic under root, leaf like 'summary' or 'cmd/ack'."""
    prefix = root.rstrip("/") + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]
