"""The collector's MQTT client: how it connects (protocol, persistent session, security)
and what its ingest subscribes to. Used by the ingest and by the commands that talk to
devices (operations, model push, update status)."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.config.mqtt import secure
from edgewatch.contracts.topics import LEAVES

__all__ = ["make_client", "subscriptions"]


def subscriptions(cfg: CollectorMqttConfig) -> list[str]:
    """One filter per device -> collector leaf (:data:`~edgewatch.contracts.topics.LEAVES`).

    Never ``<root>/+/+/#``: that would match the command topics (``<device>/cmd/<name>``)
    too, so the broker would always find a subscriber for a command and could never answer
    an operator's PUBLISH with "no matching subscribers" (MQTT 5 reason 16) when the device
    is offline. With ``shared_group``, each filter is ``$share/<group>/...``.
    """
    topics = [f"{cfg.topic_root}/+/+/{leaf}" for leaf in LEAVES]
    if cfg.shared_group:
        return [f"$share/{cfg.shared_group}/{t}" for t in topics]
    return topics


def make_client(cfg: CollectorMqttConfig) -> mqtt.Client:
    v5 = cfg.protocol == "5"
    kwargs: dict[str, Any] = {} if v5 else {"clean_session": False}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, manual_ack=True,
                         **kwargs)
    secure(client, cfg.username, cfg.password, cfg.tls)
    client.reconnect_delay_set(1, 30)
    return client
