"""The shipped Mosquitto ACL and configuration, checked against real mosquitto processes.

Brokers come from tests/support/broker.py. The ACL under test is configs/mosquitto/acl,
unchanged; the device identity (MQTT username = device id) comes either from a password file
written with ``mosquitto_passwd -b`` or from the CN of a client certificate
(``use_identity_as_username``): the ACL tests run once per path (the ``auth`` parameter).

"Not delivered" is proved without sleeping: the same publisher sends an allowed sentinel right
after the forbidden message, and MQTT keeps one publisher's QoS 1 messages in order to a
subscriber, so when the sentinel arrives a delivered forbidden message would already be there.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from support.broker import (
    MosquittoBroker,
    Pki,
    free_port,
    make_pki,
    mosquitto_binary,
    mosquitto_passwd_binary,
    openssl_binary,
    port_accepts,
    write_password_file,
)
from support.paths import REPO

ACL = REPO / "configs" / "mosquitto" / "acl"
CONF = REPO / "configs" / "mosquitto" / "edgewatch.conf"

TIMEOUT = 3.0  # for anything that should happen; everything here takes milliseconds
NOT_AUTHORIZED = 0x87
PASSWORDS = {"cam-a": "pw-cam-a", "cam-b": "pw-cam-b", "collector": "pw-collector",
             "cam-b/cmd": "pw-slash"}

pytestmark = pytest.mark.skipif(mosquitto_binary() is None,
                                reason="mosquitto is not installed (scripts/setup-venv.sh)")

_ids = itertools.count()


class Peer:
    """A paho-mqtt 2.x client on its own network thread, with blocking helpers."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: tuple[Path, Path | None, Path | None] | None = None,  # (ca, cert, key)
        protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
        client_id: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id or f"{username or 'anon'}-{next(_ids)}".replace("/", "_")
        # reconnect_on_failure=False: a refused or dropped client's thread just ends
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=protocol, reconnect_on_failure=False)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            ca, cert, key = tls
            self.client.tls_set(ca_certs=str(ca), certfile=cert and str(cert),
                                keyfile=key and str(key))
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: ReasonCode | None = None
        self.disconnect_reason: ReasonCode | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self._answered = threading.Event()  # CONNACK or connection closed
        self._acks: dict[int, object] = {}
        self._cond = threading.Condition()
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        c.on_publish = lambda _c, _u, mid, rc, _p: self._ack(mid, rc)
        c.on_subscribe = lambda _c, _u, mid, rcs, _p: self._ack(mid, rcs)

    def _on_connect(self, _c, _u, _flags, rc: ReasonCode, _props) -> None:
        self.connack = rc
        self.connected.set()
        self._answered.set()

    def _on_disconnect(self, _c, _u, _flags, rc: ReasonCode, _props) -> None:
        self.disconnect_reason = rc
        self.disconnected.set()
        self._answered.set()

    def _ack(self, mid: int, value: object) -> None:
        with self._cond:
            self._acks[mid] = value
            self._cond.notify_all()

    def _wait_ack(self, mid: int) -> object:
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acks, TIMEOUT):
                raise AssertionError(f"{self.client_id}: no ack for message id {mid}")
            return self._acks.pop(mid)

    # -- connection ----------------------------------------------------------------------------

    def start(self) -> ReasonCode | None:
        """Connect and wait for CONNACK; its reason code, or None if the connection was closed
        (or the TLS handshake failed) before any CONNACK."""
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except (ssl.SSLError, OSError):
            return None
        self.client.loop_start()
        self._answered.wait(TIMEOUT)
        return self.connack

    def connect(self) -> Peer:
        rc = self.start()
        assert rc is not None and not rc.is_failure, f"{self.client_id}: CONNACK {rc}"
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- operations ----------------------------------------------------------------------------

    def subscribe(self, topic: str, qos: int = 1) -> ReasonCode:
        rc, mid = self.client.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        (granted,) = self._wait_ack(mid)  # type: ignore[misc]
        return granted

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
                ) -> ReasonCode:
        """Publish with QoS 1 and return the PUBACK's reason code (always Success under MQTT
        3.1.1, which has none)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        return self._wait_ack(info.mid)  # type: ignore[return-value]

    def receive_until(self, topic: str, payload: bytes | None = None) -> list[mqtt.MQTTMessage]:
        """Messages received up to and including the first on ``topic`` (with ``payload``)."""
        seen = []
        while True:
            try:
                msg = self.messages.get(timeout=TIMEOUT)
            except queue.Empty:
                got = [(m.topic, m.payload) for m in seen]
                raise AssertionError(f"{self.client_id}: nothing on {topic}; got {got}") from None
            seen.append(msg)
            if msg.topic == topic and (payload is None or msg.payload == payload):
                return seen


def topics(messages: list[mqtt.MQTTMessage]) -> list[tuple[str, bytes]]:
    return [(m.topic, m.payload) for m in messages]


# -- brokers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def acl_file() -> Path:
    assert ACL.is_file(), ACL
    return ACL


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if openssl_binary() is None:
        pytest.skip("the openssl command line tool is not installed: no TLS tests")
    return make_pki(tmp_path_factory.mktemp("pki"), ["cam-a", "cam-b", "collector"])


@pytest.fixture(scope="module")
def password_broker(tmp_path_factory: pytest.TempPathFactory,
                    acl_file: Path) -> Iterator[MosquittoBroker]:
    """Plain TCP, usernames/passwords from a mosquitto_passwd file, the shipped ACL."""
    d = tmp_path_factory.mktemp("password-broker")
    passwd = write_password_file(d / "passwd", PASSWORDS,
                                 use_tool=mosquitto_passwd_binary() is not None)
    with MosquittoBroker(allow_anonymous=False, workdir=d, extra_config=[
            f"password_file {passwd}", f"acl_file {acl_file}"]) as broker:
        yield broker


@pytest.fixture(scope="module")
def cert_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki,
                acl_file: Path) -> Iterator[MosquittoBroker]:
    """TLS, client certificate required, CN = username, the shipped ACL."""
    with MosquittoBroker(allow_anonymous=False, workdir=tmp_path_factory.mktemp("cert-broker"),
                         listener_config=pki.listener_config(),
                         extra_config=[f"acl_file {acl_file}"]) as broker:
        yield broker


Connect = Callable[..., Peer]


@pytest.fixture(params=["password", "certificate"])
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """``connect(user, protocol=..., client_id=..., start=True) -> Peer`` on the password
    broker or on the client-certificate broker (the identity is then the certificate's CN)."""
    peers: list[Peer] = []
    if request.param == "password":
        broker = request.getfixturevalue("password_broker")

        def make(user: str, **kw: object) -> Peer:
            return Peer(broker.host, broker.port, username=user, password=PASSWORDS[user],
                        **kw)  # type: ignore[arg-type]
    else:
        broker = request.getfixturevalue("cert_broker")
        pki: Pki = request.getfixturevalue("pki")

        def make(user: str, **kw: object) -> Peer:
            cert, key = pki.clients[user]
            return Peer("localhost", broker.port, tls=(pki.ca_cert, cert, key),
                        **kw)  # type: ignore[arg-type]

    def factory(user: str, *, start: bool = True, **kw: object) -> Peer:
        peer = make(user, **kw)
        peers.append(peer)
        return peer.connect() if start else peer

    yield factory
    for peer in peers:
        peer.close()


@pytest.fixture
def fleet() -> str:
    """A fleet name of its own per test, so retained messages never leak between tests."""
    return f"f{uuid.uuid4().hex[:8]}"


def t(fleet: str, device: str, sub: str) -> str:
    return f"edgewatch/v1/{fleet}/{device}/{sub}"


# -- the helper itself ---------------------------------------------------------------------------


def test_broker_lifecycle_restart_kill_and_cleanup() -> None:
    with MosquittoBroker() as b:
        port, workdir = b.port, b.workdir
        assert b.running and port_accepts(b.host, port)
        assert f"listener {port} 127.0.0.1" in b.config_path.read_text()
        first = b.pid
        b.restart()
        assert b.port == port and b.pid != first and port_accepts(b.host, port)
        b.kill()
        assert not b.running and not port_accepts(b.host, port)
        b.start()
        assert port_accepts(b.host, port)
        assert "mosquitto version 2." in b.log_text()
    assert not workdir.exists()
    assert not port_accepts("127.0.0.1", port)


def test_broker_persistence_keeps_retained_messages_across_restart() -> None:
    topic = "edgewatch/v1/f/cam/status"
    with MosquittoBroker(persistence=True) as b:
        pub = Peer(b.host, b.port, protocol=mqtt.MQTTv311).connect()
        assert not pub.publish(topic, b"online", retain=True).is_failure
        pub.close()
        b.restart()  # SIGTERM: mosquitto writes its database
        assert any(b.persistence_location.iterdir())
        sub = Peer(b.host, b.port).connect()
        sub.subscribe(topic)
        (msg,) = sub.receive_until(topic)
        assert msg.payload == b"online" and msg.retain
        sub.close()


def test_broker_reports_a_bad_config(tmp_path: Path) -> None:
    from support.broker import BrokerError

    b = MosquittoBroker(workdir=tmp_path, extra_config=["no_such_option 1"])
    with pytest.raises(BrokerError, match="no_such_option"):
        b.start()
    assert not b.running


def test_python_password_hashes_are_accepted(tmp_path: Path) -> None:
    passwd = write_password_file(tmp_path / "passwd", {"cam-a": "s3cret"}, use_tool=False)
    with MosquittoBroker(allow_anonymous=False, workdir=tmp_path,
                         extra_config=[f"password_file {passwd}"]) as b:
        good = Peer(b.host, b.port, username="cam-a", password="s3cret")
        assert good.connect().connack is not None
        good.close()
        bad = Peer(b.host, b.port, username="cam-a", password="wrong")
        rc = bad.start()
        bad.close()
        assert rc is not None and rc.is_failure


# -- ACL: the same checks with passwords and with client certificates ----------------------------


def test_device_publishes_its_own_topics(connect: Connect, fleet: str) -> None:
    collector = connect("collector")
    collector.subscribe("edgewatch/v1/+/+/#")
    cam_a = connect("cam-a")
    leaves = ("status", "summary", "alert", "reference", "evidence", "cmd_result")
    for sub in leaves:
        rc = cam_a.publish(t(fleet, "cam-a", sub), sub.encode(),
                           retain=sub in ("status", "reference"))
        assert not rc.is_failure, (sub, rc)
    got = collector.receive_until(t(fleet, "cam-a", "cmd_result"))
    assert topics(got) == [(t(fleet, "cam-a", s), s.encode()) for s in leaves]


def test_device_cannot_publish_as_another_device(connect: Connect, fleet: str) -> None:
    collector = connect("collector")
    collector.subscribe(f"edgewatch/v1/{fleet}/#")
    cam_a = connect("cam-a")
    forbidden = [
        t(fleet, "cam-b", "summary"),      # another device's data
        t(fleet, "cam-b", "status"),       # ... or its birth / last will
        t(fleet, "cam-b", "evidence"),     # ... or its evidence chunks
        t(fleet, "cam-a", "cmd/reboot"),   # commands to itself: only the collector sends those
        t(fleet, "cam-b", "cmd/reboot"),
        t(fleet, "cam-a", "other"),        # outside the contract
        f"edgewatch/v1/{fleet}/cam-a",
    ]
    for topic in forbidden:
        rc = cam_a.publish(topic, b"forged")
        assert rc.value == NOT_AUTHORIZED, (topic, rc)  # MQTT 5 PUBACK: 0x87 Not authorized
    sentinel = t(fleet, "cam-a", "summary")
    assert not cam_a.publish(sentinel, b"sentinel").is_failure
    assert topics(collector.receive_until(sentinel)) == [(sentinel, b"sentinel")]


def test_mqtt311_forbidden_publish_is_silently_dropped(connect: Connect, fleet: str) -> None:
    collector = connect("collector")
    collector.subscribe(f"edgewatch/v1/{fleet}/#")
    cam_a = connect("cam-a", protocol=mqtt.MQTTv311)
    # MQTT 3.1.1's PUBACK has no reason code: the device cannot tell it was refused...
    assert not cam_a.publish(t(fleet, "cam-b", "summary"), b"forged").is_failure
    sentinel = t(fleet, "cam-a", "summary")
    cam_a.publish(sentinel, b"sentinel")
    # ... but nobody receives it
    assert topics(collector.receive_until(sentinel)) == [(sentinel, b"sentinel")]


def test_device_receives_only_its_own_commands(connect: Connect, fleet: str) -> None:
    collector = connect("collector")
    cam_b = connect("cam-b")
    cam_a = connect("cam-a")
    granted = [cam_a.subscribe(f) for f in (
        t(fleet, "cam-b", "cmd/#"), t(fleet, "cam-a", "cmd/#"), "edgewatch/v1/#")]
    # mosquitto 2.0's acl_file never refuses a SUBSCRIBE (a FIXME in its source): every
    # filter is granted, and read rights are applied to each message at delivery instead.
    assert all(not rc.is_failure for rc in granted), granted
    cam_b.subscribe(t(fleet, "cam-b", "cmd/#"))

    assert not collector.publish(t(fleet, "cam-b", "cmd/reboot"), b"for-b").is_failure
    assert not collector.publish(t(fleet, "cam-a", "cmd/reboot"), b"for-a").is_failure

    got = cam_a.receive_until(t(fleet, "cam-a", "cmd/reboot"))
    # only cam-a's own command arrives (once per matching subscription, hence a set)
    assert {m.topic for m in got} == {t(fleet, "cam-a", "cmd/reboot")}
    assert topics(cam_b.receive_until(t(fleet, "cam-b", "cmd/reboot"))) == [
        (t(fleet, "cam-b", "cmd/reboot"), b"for-b")]


def test_model_update_chunks_only_from_the_collector_to_their_device(connect: Connect,
                                                                     fleet: str) -> None:
    collector = connect("collector")
    cam_a = connect("cam-a")
    cam_b = connect("cam-b")
    cam_a.subscribe(t(fleet, "cam-a", "update/#"))
    cam_a.subscribe(t(fleet, "cam-b", "update/#"))   # granted, but nothing of cam-b arrives
    cam_b.subscribe(t(fleet, "cam-b", "update/#"))
    # a device can neither push an update to another device nor to itself
    assert cam_b.publish(t(fleet, "cam-a", "update/u-1"), b"evil").value == NOT_AUTHORIZED
    assert cam_a.publish(t(fleet, "cam-a", "update/u-1"), b"self").value == NOT_AUTHORIZED
    assert not collector.publish(t(fleet, "cam-b", "update/u-1"), b"for-b").is_failure
    assert not collector.publish(t(fleet, "cam-a", "update/u-1"), b"for-a").is_failure
    assert topics(cam_a.receive_until(t(fleet, "cam-a", "update/u-1"))) == [
        (t(fleet, "cam-a", "update/u-1"), b"for-a")]
    assert topics(cam_b.receive_until(t(fleet, "cam-b", "update/u-1"))) == [
        (t(fleet, "cam-b", "update/u-1"), b"for-b")]


def test_device_does_not_see_other_devices_retained_status(connect: Connect, fleet: str) -> None:
    cam_b = connect("cam-b")
    assert not cam_b.publish(t(fleet, "cam-b", "status"), b"online", retain=True).is_failure
    cam_a = connect("cam-a")
    cam_a.subscribe(f"edgewatch/v1/{fleet}/#")   # retained cam-b status is not sent
    cam_a.subscribe(t(fleet, "cam-a", "cmd/#"))
    collector = connect("collector")
    collector.publish(t(fleet, "cam-a", "cmd/ping"), b"ping")
    got = cam_a.receive_until(t(fleet, "cam-a", "cmd/ping"))
    assert {m.topic for m in got} == {t(fleet, "cam-a", "cmd/ping")}


def test_collector_commands_any_device_but_cannot_forge_device_data(connect: Connect,
                                                                    fleet: str) -> None:
    collector = connect("collector")
    collector.subscribe(f"edgewatch/v1/{fleet}/#")
    cam_a = connect("cam-a")
    cam_a.subscribe("edgewatch/v1/+/cam-a/cmd/#")
    other_fleet = fleet + "x"
    assert not collector.publish(t(other_fleet, "cam-a", "cmd/set"), b"x").is_failure
    for sub in ("summary", "status", "alert", "cmd_result", "reference", "evidence"):
        assert collector.publish(t(fleet, "cam-a", sub), b"forged").value == NOT_AUTHORIZED
    assert topics(cam_a.receive_until(t(other_fleet, "cam-a", "cmd/set"))) == [
        (t(other_fleet, "cam-a", "cmd/set"), b"x")]
    cam_a.publish(t(fleet, "cam-a", "cmd_result"), b"done")
    got = collector.receive_until(t(fleet, "cam-a", "cmd_result"))
    assert topics(got) == [(t(fleet, "cam-a", "cmd_result"), b"done")]


def test_last_will_only_on_the_device_own_status(connect: Connect, fleet: str) -> None:
    collector = connect("collector")
    collector.subscribe(f"edgewatch/v1/{fleet}/#")
    will_with_will = ReasonCode(PacketTypes.DISCONNECT, identifier=0x04)
    for device in ("cam-b", "cam-a"):  # forged will first, the device's own second
        peer = connect("cam-a", start=False)
        peer.client.will_set(t(fleet, device, "status"), b"offline", qos=1, retain=True)
        peer.connect()  # mosquitto 2.0 accepts the CONNECT: the will is checked when sent
        peer.client.disconnect(reasoncode=will_with_will)  # MQTT 5: "send my will"
        assert peer.disconnected.wait(TIMEOUT)
        peer.client.loop_stop()
    got = collector.receive_until(t(fleet, "cam-a", "status"))
    assert topics(got) == [(t(fleet, "cam-a", "status"), b"offline")]


def test_fleet_level_is_not_bound_to_the_device(connect: Connect, fleet: str) -> None:
    """Documented limit of the '+' in the patterns: a device id is global across fleets."""
    collector = connect("collector")
    collector.subscribe("edgewatch/v1/+/cam-a/summary")
    cam_a = connect("cam-a")
    for f in (fleet, fleet + "-other"):
        assert not cam_a.publish(t(f, "cam-a", "summary"), f.encode()).is_failure
    got = collector.receive_until(t(fleet + "-other", "cam-a", "summary"))
    assert [m.topic for m in got] == [t(fleet, "cam-a", "summary"),
                                      t(fleet + "-other", "cam-a", "summary")]


# -- password path only --------------------------------------------------------------------------


def test_unknown_wrong_or_missing_credentials_are_refused(password_broker: MosquittoBroker
                                                          ) -> None:
    b = password_broker
    for user, pw in (("cam-a", "wrong"), ("cam-z", "pw"), (None, None)):
        peer = Peer(b.host, b.port, username=user, password=pw)
        rc = peer.start()
        peer.close()
        assert rc is not None and rc.is_failure, (user, rc)


def test_removing_a_password_and_reloading_revokes_the_device(tmp_path: Path,
                                                               acl_file: Path) -> None:
    """SIGHUP re-reads password_file and, in mosquitto 2.0.11, also disconnects clients whose
    user is gone (the man page says connected clients are not affected)."""
    passwd = write_password_file(tmp_path / "passwd", {"cam-a": "pw", "cam-b": "pw"})
    with MosquittoBroker(allow_anonymous=False, workdir=tmp_path, extra_config=[
            f"password_file {passwd}", f"acl_file {acl_file}"]) as b:
        cam_a = Peer(b.host, b.port, username="cam-a", password="pw").connect()
        cam_b = Peer(b.host, b.port, username="cam-b", password="pw").connect()
        write_password_file(passwd, {"cam-b": "pw"})
        b.reload()
        assert cam_a.disconnected.wait(TIMEOUT)
        again = Peer(b.host, b.port, username="cam-a", password="pw")
        rc = again.start()
        again.close()
        assert rc is not None and rc.is_failure
        assert not cam_b.publish("edgewatch/v1/f1/cam-b/summary", b"still here").is_failure
        assert not cam_b.disconnected.is_set()
        b.wait_for_log("Reloading config")
        for peer in (cam_a, cam_b):
            peer.close()


def test_device_id_with_a_slash_escapes_into_another_device(password_broker: MosquittoBroker,
                                                            fleet: str) -> None:
    """Why the ACL forbids '/' in device ids: %u is pasted unescaped, so the id 'cam-b/cmd'
    turns 'edgewatch/v1/+/%u/status' into 'edgewatch/v1/+/cam-b/cmd/status', a command topic
    of cam-b. If a future mosquitto refuses this, the rule can be relaxed and this test
    turned around."""
    b = password_broker
    rogue = Peer(b.host, b.port, username="cam-b/cmd", password=PASSWORDS["cam-b/cmd"]).connect()
    rc = rogue.publish(t(fleet, "cam-b", "cmd/status"), b"injected")
    rogue.close()
    assert not rc.is_failure


def test_client_id_takeover_without_use_username_as_clientid(password_broker: MosquittoBroker
                                                             ) -> None:
    """Why the shipped config sets use_username_as_clientid: without it any device can kick
    another off the broker by reusing its client id."""
    b = password_broker
    victim = Peer(b.host, b.port, username="cam-b", password=PASSWORDS["cam-b"],
                  client_id="victim-cam-b").connect()
    thief = Peer(b.host, b.port, username="cam-a", password=PASSWORDS["cam-a"],
                 client_id="victim-cam-b").connect()
    assert victim.disconnected.wait(TIMEOUT)
    # mosquitto 2.0.11 just closes the old socket (no MQTT 5 DISCONNECT 0x8E)
    b.wait_for_log("Client victim-cam-b already connected, closing old connection.")
    thief.close()
    victim.close()


# -- TLS with client certificates ----------------------------------------------------------------


def test_tls_client_certificate_qos1_roundtrip(cert_broker: MosquittoBroker, pki: Pki,
                                               fleet: str) -> None:
    ca = pki.ca_cert
    collector = Peer("localhost", cert_broker.port, tls=(ca, *pki.clients["collector"])).connect()
    collector.subscribe(f"edgewatch/v1/{fleet}/+/summary")
    # the MQTT username a device sends is ignored: its identity is the certificate's CN
    cam_a = Peer("127.0.0.1", cert_broker.port, username="collector", password="x",
                 tls=(ca, *pki.clients["cam-a"])).connect()
    assert not cam_a.publish(t(fleet, "cam-a", "summary"), b"over tls").is_failure
    assert cam_a.publish(t(fleet, "cam-b", "cmd/x"), b"not the collector").value == NOT_AUTHORIZED
    (msg,) = collector.receive_until(t(fleet, "cam-a", "summary"))
    assert msg.payload == b"over tls" and msg.qos == 1
    cert_broker.wait_for_log("u'cam-a'")
    cam_a.close()
    collector.close()


def test_tls_client_without_certificate_is_refused(cert_broker: MosquittoBroker,
                                                   pki: Pki) -> None:
    peer = Peer("localhost", cert_broker.port, tls=(pki.ca_cert, None, None))
    rc = peer.start()
    peer.close()
    assert rc is None  # no CONNACK: the TLS session is torn down first
    cert_broker.wait_for_log("peer did not return a certificate")


def test_tls_certificate_from_another_ca_is_refused(cert_broker: MosquittoBroker, pki: Pki,
                                                    tmp_path: Path) -> None:
    rogue = make_pki(tmp_path, ["cam-a"], ca_name="rogue-ca")
    peer = Peer("localhost", cert_broker.port, tls=(pki.ca_cert, *rogue.clients["cam-a"]))
    rc = peer.start()
    peer.close()
    assert rc is None
    cert_broker.wait_for_log("certificate verify failed")  # refused for its CA, not by chance


# -- the shipped edgewatch.conf ------------------------------------------------------------------


def shipped_config(files: dict[str, Path], ports: dict[int, int], workdir: Path) -> str:
    """configs/mosquitto/edgewatch.conf with the optional password listener enabled, its
    ports moved to free loopback ports and its /etc, /var paths moved under ``workdir``."""
    out, in_block = [], False
    for line in CONF.read_text().splitlines():
        if line.startswith("# >>> password listener"):
            in_block = True
        elif line.startswith("# <<< password listener"):
            in_block = False
        elif in_block and re.match(r"#\w", line):
            line = line[1:]
        words = line.split()
        if words[:1] == ["listener"]:
            line = f"listener {ports[int(words[1])]} 127.0.0.1"
        elif words[:1] == ["persistence_location"]:
            line = f"persistence_location {workdir / 'data'}/"
        elif words[:2] == ["log_dest", "file"]:
            line = f"log_dest file {workdir / 'mosquitto.log'}"
        elif not line.startswith("#"):
            for path in re.findall(r"/etc/mosquitto/edgewatch/\S+", line):
                line = line.replace(path, str(files[os.path.basename(path)]))
        out.append(line)
    return "\n".join(out) + "\n"


def test_shipped_edgewatch_conf(tmp_path: Path, pki: Pki, acl_file: Path, fleet: str) -> None:
    (tmp_path / "data").mkdir()
    passwd = write_password_file(tmp_path / "passwd", PASSWORDS)
    files = {"acl": acl_file, "passwd": passwd, "ca.crt": pki.ca_cert,
             "server.crt": pki.server_cert, "server.key": pki.server_key}
    cert_port, pw_port = free_port(), free_port()
    text = shipped_config(files, {8883: cert_port, 8884: pw_port}, tmp_path)
    assert "password_file" in text and "use_identity_as_username true" in text
    with MosquittoBroker(port=cert_port, config=text, workdir=tmp_path) as b:
        assert b.listener_addresses() == [("127.0.0.1", cert_port), ("127.0.0.1", pw_port)]
        assert port_accepts("127.0.0.1", pw_port)  # start() waited for both listeners
        ca = pki.ca_cert
        # password listener, TLS without client certificate
        collector = Peer("localhost", pw_port, username="collector",
                         password=PASSWORDS["collector"], tls=(ca, None, None)).connect()
        collector.subscribe(f"edgewatch/v1/{fleet}/#")
        cam_b = Peer("localhost", pw_port, username="cam-b", password=PASSWORDS["cam-b"],
                     tls=(ca, None, None), client_id="anything").connect()
        # certificate listener; the client id it asks for is replaced by its CN
        cam_a = Peer("localhost", cert_port, tls=(ca, *pki.clients["cam-a"]),
                     client_id="cam-b").connect()
        assert not cam_a.publish(t(fleet, "cam-a", "summary"), b"a").is_failure
        assert cam_a.publish(t(fleet, "cam-b", "summary"), b"forged").value == NOT_AUTHORIZED
        assert not cam_b.publish(t(fleet, "cam-b", "summary"), b"b").is_failure
        assert not cam_b.disconnected.is_set()  # cam-a's "cam-b" client id did not kick it
        got = collector.receive_until(t(fleet, "cam-b", "summary"))
        assert topics(got) == [(t(fleet, "cam-a", "summary"), b"a"),
                               (t(fleet, "cam-b", "summary"), b"b")]
        b.wait_for_log("as cam-a (")
        b.wait_for_log("as cam-b (")
        # no client certificate, no entry on 8883, whatever the username and password
        nocert = Peer("localhost", cert_port, username="collector",
                      password=PASSWORDS["collector"], tls=(ca, None, None))
        assert nocert.start() is None
        nocert.close()
        # a plain (non-TLS) client gets nowhere on either port
        for port in (cert_port, pw_port):
            plain = Peer("127.0.0.1", port, username="collector",
                         password=PASSWORDS["collector"])
            assert plain.start() is None
            plain.close()
        for peer in (cam_a, cam_b, collector):
            peer.close()
