"""The agent's delivery sections: publishing to the broker (``[mqtt]``) and the durable queue
in front of it (``[outbox]``).

Part of the agent's configuration tree (:class:`edgewatch.config.agent.AgentConfig`), used by
``edgewatch.agent.delivery``; ``docs/configuration.md`` lists these keys.

>>> MqttConfig().port, OutboxConfig().max_mb
(1883, 256.0)
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from edgewatch.config.mqtt import TlsConfig
from edgewatch.config.typed import section, setting


@dataclasses.dataclass(frozen=True)
class MqttConfig:
    enabled: bool = setting(False, "Publish summaries and alerts to an MQTT broker.")
    host: str = setting("127.0.0.1", "Broker host name or address.")
    port: int = setting(1883, "Broker port (8883 is usual for TLS).", minimum=1, maximum=65535)
    protocol: Literal["5", "3.1.1"] = setting("5", "MQTT protocol version.")
    encoding: Literal["msgpack", "json"] = setting(
        "msgpack", "Payload encoding: MessagePack deflated with a preset dictionary (about a "
        "third of the JSON size) or JSON; under MQTT 5 the content-type property names it.")
    client_id: str = setting("", "MQTT client id; empty means 'edgewatch-<device id>'.")
    username: str = setting("", "User name; empty for none.")
    password: str = setting("", "Password (used only with a user name).")
    keepalive_s: int = setting(30, "Keep-alive interval; the last will fires after about 1.5 "
                                   "times this without contact.", minimum=5, maximum=3600)
    topic_root: str = setting("edgewatch/v1", "Topic prefix: <root>/<fleet>/<device>/...")
    max_inflight: int = setting(
        32, "QoS 1 messages published and not yet acknowledged at once.", minimum=1,
        maximum=1000,
    )
    drain_rate: float = setting(
        0.0, "Upper bound on messages per second when draining a backlog; 0 = no limit.",
        minimum=0.0,
    )
    reconnect_min_s: float = setting(1.0, "First wait before reconnecting.", minimum=0.01)
    reconnect_max_s: float = setting(
        120.0, "Longest wait between reconnect attempts (exponential, with jitter).",
        minimum=0.01,
    )
    historical_after_s: float = setting(
        30.0, "A message published this long after it was queued is flagged historical.",
        minimum=0.0,
    )
    shutdown_wait_s: float = setting(
        5.0, "On a clean stop of 'run', wait up to this long for the broker to acknowledge "
        "what is queued (0 = do not wait; not at all while disconnected).", minimum=0.0,
    )
    tls: TlsConfig = section(TlsConfig, "Transport security.")


@dataclasses.dataclass(frozen=True)
class OutboxConfig:
    path: str = setting("edgewatch-outbox.db", "SQLite file of the store-and-forward queue.")
    max_mb: float = setting(
        256.0, "Size cap of the outbox's files (database, WAL, -shm), held at every instant; "
        "beyond it old summaries are merged, then evicted (alerts last).", minimum=0.15,
    )
    max_age_days: float = setting(
        30.0, "Status and summary messages older than this are evicted (alerts never; "
        "0 = no age cap).", minimum=0.0
    )
