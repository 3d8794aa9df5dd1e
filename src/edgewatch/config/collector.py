"""The collector's configuration tree (``configs/collector.toml``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from edgewatch.config.mqtt import TlsConfig
from edgewatch.config.typed import build, read_toml, section, setting


@dataclasses.dataclass(frozen=True)
class CollectorMqttConfig:
    host: str = setting("127.0.0.1", "Broker host name or address.")
    port: int = setting(1883, "Broker port.", minimum=1, maximum=65535)
    protocol: Literal["5", "3.1.1"] = setting(
        "5", "MQTT protocol version (shared subscriptions need 5).")
    client_id: str = setting(
        "edgewatch-collector", "Client id; keep it stable so the broker keeps the session "
        "(and queues messages) while the collector restarts.")
    username: str = setting("", "User name; empty for none.")
    password: str = setting("", "Password (used only with a user name).")
    keepalive_s: int = setting(30, "Keep-alive interval.", minimum=5, maximum=3600)
    session_expiry_s: int = setting(
        7 * 86400, "How long the broker keeps the session and queues QoS 1 messages for a "
        "collector that is away.", minimum=0)
    topic_root: str = setting("edgewatch/v1", "Topic prefix the devices publish under.")
    shared_group: str = setting(
        "", "If set, subscribe through the MQTT 5 shared subscription "
        "$share/<group>/...: instances with the same group split the load.")
    tls: TlsConfig = section(TlsConfig, "Transport security.")


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    url: str = setting(
        "sqlite:///edgewatch-collector.db", "Where the fleet history is kept: "
        "sqlite:///PATH or postgresql://USER@HOST:PORT/DB (needed for several instances).")
    batch_size: int = setting(100, "Messages stored per transaction at most.", minimum=1,
                              maximum=10000)
    batch_wait_ms: float = setting(
        50.0, "Longest wait for a batch to fill before storing it.", minimum=0.0)
    queue_size: int = setting(
        10000, "Messages received and not yet stored; when full, the collector stops "
        "reading from the broker (which keeps them).", minimum=1)


@dataclasses.dataclass(frozen=True)
class HttpConfig:
    host: str = setting("127.0.0.1", "Address of the /metrics endpoint.")
    port: int = setting(9108, "Port of the /metrics endpoint (0 = do not serve).",
                        minimum=0, maximum=65535)


@dataclasses.dataclass(frozen=True)
class FleetConfig:
    stale_after_s: float = setting(
        300.0, "A device whose last summary is older than this is reported stale.",
        minimum=1.0)
    peer_js_threshold: float = setting(
        0.3, "Jensen-Shannon distance from its peers (same reference) above which a "
        "device's feature is flagged.", minimum=0.0, maximum=1.0)
    peer_windows: int = setting(
        1, "Recent windows per device compared with its peers (each extra window costs a "
        "query per device per scrape).", minimum=1)


@dataclasses.dataclass(frozen=True)
class AlertingConfig:
    alertmanager_url: str = setting(
        "", "Alertmanager base URL (http://host:9093): each new device alert is POSTed to "
        "<url>/api/v2/alerts. Empty: not used.")
    webhook_url: str = setting(
        "", "Slack-compatible incoming webhook URL: each new device alert is posted as "
        "{\"text\": ...}. It is a secret: keep this file private. Empty: not used.")
    timeout_s: float = setting(5.0, "HTTP timeout of one request.", minimum=0.1,
                               maximum=120.0)
    active_ttl_s: float = setting(
        10800.0, "Active alerts are sent to Alertmanager with endsAt = now + this, so the "
        "alert of a device that vanished expires; keep it above the agents' "
        "alerts.renotify_s.", minimum=60.0)
    generator_url: str = setting(
        "", "Optional link sent with every Alertmanager alert as generatorURL (a dashboard).")


@dataclasses.dataclass(frozen=True)
class CollectorConfig:
    mqtt: CollectorMqttConfig = section(CollectorMqttConfig, "The broker.")
    store: StoreConfig = section(StoreConfig, "The fleet store.")
    http: HttpConfig = section(HttpConfig, "Prometheus endpoint.")
    fleet: FleetConfig = section(FleetConfig, "Fleet state.")
    alerting: AlertingConfig = section(AlertingConfig, "Where device alerts are routed.")


def parse_collector_config(data: dict[str, Any], base: Path | None = None) -> CollectorConfig:
    from edgewatch.collector.routing import check_url

    cfg = build(CollectorConfig, data)
    check_url(cfg.alerting.alertmanager_url, "alerting.alertmanager_url")
    check_url(cfg.alerting.webhook_url, "alerting.webhook_url")
    check_url(cfg.alerting.generator_url, "alerting.generator_url")
    url = cfg.store.url
    if base is not None and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = url[len("sqlite:///"):]
        if not Path(path).is_absolute():
            cfg = dataclasses.replace(cfg, store=dataclasses.replace(
                cfg.store, url="sqlite:///" + str((base / path).resolve())))
    return cfg


def load_collector_config(path: str | Path) -> CollectorConfig:
    """Read and validate the collector's TOML configuration."""
    return parse_collector_config(read_toml(path), Path(path).parent)
