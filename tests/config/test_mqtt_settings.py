"""MQTT settings: credentials and TLS on a real paho client (edgewatch.config.mqtt), and the
agent's ``[mqtt]`` and ``[outbox]`` sections (edgewatch.config.delivery)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edgewatch.config.agent import parse_config
from edgewatch.config.collector import parse_collector_config
from edgewatch.config.delivery import MqttConfig, OutboxConfig
from edgewatch.config.mqtt import TlsConfig, secure
from edgewatch.errors import ConfigError


def client() -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t")


def test_no_credentials_and_no_tls_leave_the_client_plain() -> None:
    c = client()
    secure(c, "", "ignored without a user name", TlsConfig())
    assert c.username is None and c.password is None
    assert c._ssl_context is None


def test_a_user_name_without_a_password_sends_no_password() -> None:
    c = client()
    secure(c, "cam-1", "", TlsConfig())
    assert (c.username, c.password) == ("cam-1", None)
    secure(c, "cam-1", "s3cret", TlsConfig())
    assert (c.username, c.password) == ("cam-1", "s3cret")


def test_tls_requires_a_verified_broker_certificate_and_its_host_name() -> None:
    c = client()
    secure(c, "", "", TlsConfig(enabled=True))
    context = c._ssl_context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_insecure_skips_only_the_host_name_check() -> None:
    c = client()
    secure(c, "", "", TlsConfig(enabled=True, insecure=True))
    context = c._ssl_context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname


def test_unreadable_tls_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^mqtt\.tls: "):
        secure(client(), "", "", TlsConfig(enabled=True, ca_file=str(tmp_path / "none.pem")))
    not_a_cert = tmp_path / "cert.pem"
    not_a_cert.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"^mqtt\.tls: "):
        secure(client(), "", "", TlsConfig(enabled=True, cert_file=str(not_a_cert),
                                           key_file=str(not_a_cert)))


def test_agent_and_collector_read_the_same_tls_section() -> None:
    tls = {"enabled": True, "ca_file": "/etc/edgewatch/ca.pem", "insecure": True}
    agent = parse_config({"mqtt": {"port": 8883, "tls": tls}})
    collector = parse_collector_config({"mqtt": {"port": 8883, "tls": tls}})
    assert agent.mqtt.tls == collector.mqtt.tls == TlsConfig(
        enabled=True, ca_file="/etc/edgewatch/ca.pem", insecure=True)


def test_delivery_defaults() -> None:
    cfg = parse_config({})
    assert cfg.mqtt == MqttConfig() and cfg.outbox == OutboxConfig()
    assert not cfg.mqtt.enabled and cfg.mqtt.encoding == "msgpack" and cfg.mqtt.protocol == "5"
    assert cfg.mqtt.tls == TlsConfig()


@pytest.mark.parametrize(("section", "message"), [
    ({"mqtt": {"port": 0}}, "mqtt.port: expected a value >= 1, got 0"),
    ({"mqtt": {"port": 65536}}, "mqtt.port: expected a value <= 65535"),
    ({"mqtt": {"encoding": "xml"}}, "mqtt.encoding: expected one of 'msgpack', 'json'"),
    ({"mqtt": {"protocol": "3"}}, "mqtt.protocol: expected one of '5', '3.1.1'"),
    ({"mqtt": {"keepalive_s": 1}}, "mqtt.keepalive_s: expected a value >= 5"),
    ({"mqtt": {"tls": {"verify": True}}}, "mqtt.tls.verify: unknown key"),
    ({"outbox": {"max_mb": 0.01}}, "outbox.max_mb: expected a value >= 0.1"),
    ({"outbox": {"max_age_days": -1}}, "outbox.max_age_days: expected a value >= 0"),
])
def test_delivery_values_out_of_their_bounds_are_refused(section: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        parse_config(section)
