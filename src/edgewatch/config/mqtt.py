"""Credentials and TLS for a paho client, shared by the agent and the collector."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from edgewatch.config.typed import setting
from edgewatch.errors import ConfigError

if TYPE_CHECKING:  # paho and ssl are imported when a client is set up, not by config checks
    import paho.mqtt.client as mqtt


@dataclasses.dataclass(frozen=True)
class TlsConfig:
    enabled: bool = setting(False, "Connect to the broker over TLS.")
    ca_file: str = setting("", "CA certificate(s) that signed the broker's certificate.")
    cert_file: str = setting("", "Client certificate (its CN is the device id on brokers "
                                 "using use_identity_as_username).")
    key_file: str = setting("", "Private key of the client certificate.")
    insecure: bool = setting(False, "Skip the broker host name check (testing only).")


def secure(client: mqtt.Client, username: str, password: str, tls: TlsConfig) -> None:
    """Set user name/password (if any) and TLS with client certificates (if enabled)."""
    if username:
        client.username_pw_set(username, password or None)
    if not tls.enabled:
        return
    import ssl

    try:
        client.tls_set(ca_certs=tls.ca_file or None, certfile=tls.cert_file or None,
                       keyfile=tls.key_file or None, cert_reqs=ssl.CERT_REQUIRED)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"mqtt.tls: {exc}") from exc
    client.tls_insecure_set(tls.insecure)
