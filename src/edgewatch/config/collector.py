"""The collector's configuration tree (``configs/collector.toml``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from edgewatch.config.mqtt import TlsConfig
from edgewatch.config.typed import build, read_toml, section, setting
from edgewatch.errors import ConfigError


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
        "$share/<group>/... (protocol 5; Mosquitto >= 1.6, EMQX, VerneMQ): instances with "
        "the same group, each with its own client_id and the same PostgreSQL store, split "
        "the fleet's messages, each message going to one of them. A stopped instance keeps "
        "its session: the broker holds its share until it returns (docs/scaling.md).")
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
    worker_process: bool = setting(
        False, "Decode and store messages in a second process, which runs on another core "
        "beside the one reading from the broker: more messages a second per instance "
        "(bench/ingest.py; docs/scaling.md). The MQTT session, acknowledgements, alert "
        "routing, queued commands and evidence stay in the collector's own process. Needs "
        "a store a second process can open (not sqlite:///:memory:).")

    def validate(self) -> None:
        if self.worker_process and self.url.endswith(":memory:"):
            raise ValueError("worker_process: a second process cannot open "
                             "sqlite:///:memory: (use a file or PostgreSQL)")


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
    runbook_url: str = setting(
        "docs/runbook.md", "Where operators read the runbook (this project's docs/runbook.md, "
        "hosted where your team reads it): each alert's runbook_url annotation is this plus "
        "the section for its rule, e.g. '#a-device-reports-drift'.")


@dataclasses.dataclass(frozen=True)
class CommandsConfig:
    expire_s: float = setting(
        7 * 86400.0, "An operator command queued for an offline device (edgewatch alerts "
        "commands) that was not answered within this many seconds of being sent is marked "
        "expired and no longer delivered.", minimum=60.0)


@dataclasses.dataclass(frozen=True)
class RetentionConfig:
    raw_days: float = setting(
        7.0, "Keep every summary window this many days; older ones are merged (exactly) "
        "into one summary per device, hour and reference.", minimum=0.0)
    hourly_days: float = setting(
        90.0, "Keep hourly rollups this many days (at least raw_days); older windows are "
        "merged into one summary per device, UTC day and reference.", minimum=0.0)
    daily_days: float = setting(
        730.0, "Keep daily rollups this many days, then delete them (0 = forever; else at "
        "least hourly_days).", minimum=0.0)
    alerts_days: float = setting(
        365.0, "Delete alert messages received this many days ago (0 = never); the latest "
        "message of an alert still active is kept.", minimum=0.0)
    quarantine_days: float = setting(
        30.0, "Delete quarantined messages received this many days ago (0 = never).",
        minimum=0.0)
    interval_s: float = setting(
        3600.0, "How often the collector prunes its store (0 = never: only "
        "'edgewatch fleet prune').", minimum=0.0)


@dataclasses.dataclass(frozen=True)
class AdvisoryConfig:
    interval_s: float = setting(
        300.0, "How often the collector recomputes every device's retrain advisory and "
        "publishes those that changed (retained, <root>/<fleet>/<device>/advisory; "
        "0 = never: only 'edgewatch fleet advise').", minimum=0.0)
    lookback_windows: int = setting(
        360, "Recent summaries per device the advisory reads (each is one row to decode).",
        minimum=1, maximum=100000)
    min_windows: int = setting(
        6, "A drift run (consecutive drift verdicts) shorter than this many windows is "
        "only watched; fewer judged windows than this: no advice (insufficient).",
        minimum=1)
    min_span_s: float = setting(
        3600.0, "A drift run that spans less than this (first window start to last window "
        "end) is only watched.", minimum=0.0)
    quality_share: float = setting(
        0.2, "A camera fault (black, frozen, blurred, ...) on at least this share of the "
        "monitored frames of the run (or of the last min_windows windows) explains it: "
        "clean or repair the camera, do not retrain.", minimum=0.0, maximum=1.0)
    assumed_accuracy: float = setting(
        0.9, "Accuracy the model is assumed to have on its reference footage (as validated "
        "for the camera): fixes the ATC threshold of the label-free estimate.",
        minimum=0.01, maximum=1.0)
    margin: float = setting(
        0.1, "Retrain only when the estimate has fallen to at most (1 - margin) times the "
        "reference's (ATC ratio).", minimum=0.0, maximum=1.0)


@dataclasses.dataclass(frozen=True)
class EvidenceConfig:
    dir: str = setting(
        "edgewatch-collector-evidence", "Where the collector keeps the evidence chunks and "
        "files devices send (edgewatch evidence pull), by device and frame; the pull "
        "command reads it too, so run it on the collector's host.")
    wait_s: float = setting(
        30.0, "How long edgewatch evidence pull waits for the next chunk before it stops "
        "and says what is missing (a later pull resumes).", minimum=1.0)


@dataclasses.dataclass(frozen=True)
class CollectorConfig:
    mqtt: CollectorMqttConfig = section(CollectorMqttConfig, "The broker.")
    store: StoreConfig = section(StoreConfig, "The fleet store.")
    http: HttpConfig = section(HttpConfig, "Prometheus endpoint.")
    fleet: FleetConfig = section(FleetConfig, "Fleet state.")
    alerting: AlertingConfig = section(AlertingConfig, "Where device alerts are routed.")
    retention: RetentionConfig = section(RetentionConfig, "How long the store keeps what.")
    commands: CommandsConfig = section(
        CommandsConfig, "Operator commands queued for offline devices.")
    advisory: AdvisoryConfig = section(
        AdvisoryConfig, "Retrain advisories (docs/advisory.md).")
    evidence: EvidenceConfig = section(
        EvidenceConfig, "Evidence frames retrieved from devices (docs/evidence.md).")


def parse_collector_config(data: dict[str, Any], base: Path | None = None) -> CollectorConfig:
    from edgewatch.config.urls import check_url

    cfg = build(CollectorConfig, data)
    check_url(cfg.alerting.alertmanager_url, "alerting.alertmanager_url")
    check_url(cfg.alerting.webhook_url, "alerting.webhook_url")
    check_url(cfg.alerting.generator_url, "alerting.generator_url")
    r = cfg.retention
    if r.hourly_days < r.raw_days or (r.daily_days and r.daily_days < r.hourly_days):
        raise ConfigError("retention: expected raw_days <= hourly_days <= daily_days "
                          "(daily_days 0: forever)")
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
