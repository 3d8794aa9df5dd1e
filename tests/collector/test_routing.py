"""Alert routing against a real Alertmanager and a real HTTP webhook receiver.

Alert messages come from the device's own AlertEngine (real rules, real state transitions),
with the transport fields the outbox adds, decoded as the collector decodes them.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from edgewatch.clock import ManualClock
from edgewatch.collector.alert_payloads import alertmanager_alert, rfc3339, slack_text
from edgewatch.collector.routing import ALERTMANAGER, WEBHOOK, AlertRouter, RouterThread
from edgewatch.contracts import Alert
from edgewatch.contracts.alert import Span
from edgewatch.errors import ConfigError
from support.alertmanager import AlertmanagerServer, alertmanager_binary, ours
from support.broker import free_port
from support.devices import DEVICE, FLEET, Device


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path / "alerts.db")


# --------------------------------------------------------------------------- real servers


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    if alertmanager_binary() is None:
        pytest.skip("Alertmanager is not installed (apt-get install prometheus-alertmanager)")
    with AlertmanagerServer(tmp_path / "alertmanager") as am:
        yield am


class Hook(http.server.ThreadingHTTPServer):
    """A webhook receiver: records (Content-Type, JSON body), answers ``status``."""

    received: list[tuple[str, Any]]
    status: int


class HookHandler(http.server.BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append((self.headers.get("Content-Type", ""), json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook(("127.0.0.1", 0), HookHandler)
    server.received, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def hook_url(server: Hook) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/secret"


# --------------------------------------------------------------------------- Alertmanager


def test_firing_alert_is_active_in_alertmanager_with_labels_and_annotations(
        alertmanager: AlertmanagerServer, device: Device) -> None:
    payload = device.window(91.0)
    router = AlertRouter(alertmanager_url=alertmanager.url + "/")
    router.route(FLEET, payload)
    assert router.sent == {ALERTMANAGER: 1} and not router.errors and router.pending == 0

    [alert] = ours(alertmanager, payload.id)
    assert alert["labels"] == {
        "alertname": "EdgewatchTemperature", "device": DEVICE, "fleet": FLEET,
        "rule": "temperature", "subject": "cpu", "severity": "critical",
        "group": payload.group, "source": "device", "edgewatch_id": payload.id}
    notes = alert["annotations"]
    assert notes["runbook_url"] == "docs/runbook.md#performance-and-resources"
    assert notes["summary"] == payload.message and "temperature cpu = 91" in notes["summary"]
    assert notes["observed"] == "91.0" and notes["expected"] == "< 85.0"
    assert notes["state"] == "firing"
    window = payload.window
    assert notes["window"] == f"{rfc3339(window.start)}/{rfc3339(window.end)}"
    assert alert["status"]["state"] == "active"
    assert alert["startsAt"] == rfc3339(payload.since)
    ends = dt.datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
    assert 2.9 * 3600 < ends - time.time() < 3.1 * 3600  # active for the TTL, not forever


def test_resolved_alert_leaves_the_active_alerts(alertmanager: AlertmanagerServer,
                                                  device: Device) -> None:
    router = AlertRouter(alertmanager_url=alertmanager.url)
    firing = device.window(91.0)
    router.route(FLEET, firing)
    assert len(ours(alertmanager, firing.id, active=True)) == 1
    resolved = device.window(70.0)
    assert resolved.state == "resolved" and resolved.id == firing.id
    router.route(FLEET, resolved)
    assert router.sent == {ALERTMANAGER: 2}
    assert ours(alertmanager, firing.id, active=True) == []
    assert ours(alertmanager, firing.id) == []  # resolved alerts are not listed at all


def test_acknowledged_and_snoozed_alerts_stay_active_with_their_state(
        alertmanager: AlertmanagerServer, device: Device) -> None:
    router = AlertRouter(alertmanager_url=alertmanager.url)
    firing = device.window(91.0)
    router.route(FLEET, firing)
    router.route(FLEET, device.command("ack", alert=firing.id))
    [alert] = ours(alertmanager, firing.id)
    assert alert["annotations"]["state"] == "acknowledged"
    assert alert["status"]["state"] == "active"  # silencing is Alertmanager's job

    snoozed = device.command("snooze", alert=firing.id, seconds=600)
    router.route(FLEET, snoozed)
    [alert] = ours(alertmanager, firing.id)
    assert alert["annotations"]["state"] == "snoozed"
    assert alert["annotations"]["snoozed_until"] == rfc3339(snoozed.snoozed_until)
    assert alert["status"]["state"] == "active"


def test_unreachable_alertmanager_counts_an_error_and_flush_delivers_later(
        tmp_path: Path, device: Device) -> None:
    if alertmanager_binary() is None:
        pytest.skip("Alertmanager is not installed (apt-get install prometheus-alertmanager)")
    am = AlertmanagerServer(tmp_path / "late-alertmanager")  # not started yet
    router = AlertRouter(alertmanager_url=am.url, timeout_s=2.0)
    firing = device.window(91.0)
    router.route(FLEET, firing)  # connection refused: no exception
    assert router.errors == {ALERTMANAGER: 1} and router.pending == 1 and not router.sent
    with am:
        assert router.flush() == 0
        assert router.sent == {ALERTMANAGER: 1}
        assert len(ours(am, firing.id)) == 1


def test_a_queued_firing_is_replaced_by_its_resolution_and_backoff_spares_the_caller(
        tmp_path: Path, device: Device) -> None:
    if alertmanager_binary() is None:
        pytest.skip("Alertmanager is not installed (apt-get install prometheus-alertmanager)")
    clock = ManualClock(time.time())
    am = AlertmanagerServer(tmp_path / "late-alertmanager")
    router = AlertRouter(alertmanager_url=am.url, clock=clock, backoff_s=(10.0, 60.0))
    firing = device.window(91.0)
    router.route(FLEET, firing)
    assert router.errors[ALERTMANAGER] == 1
    router.route(FLEET, device.window(70.0))  # within the back-off: queued, not tried
    assert router.errors[ALERTMANAGER] == 1
    assert router.pending == 1  # the resolution replaced the firing message
    with am:
        assert router.flush(force=False) == 1  # still backing off
        clock.advance(10.0)
        assert router.flush(force=False) == 0
        assert router.sent == {ALERTMANAGER: 1}
        assert ours(am, firing.id) == []  # never re-fired


def test_router_thread_routes_in_the_background(alertmanager: AlertmanagerServer,
                                                device: Device) -> None:
    worker = RouterThread(AlertRouter(alertmanager_url=alertmanager.url))
    worker.start()
    firing = device.window(91.0)
    worker.submit(FLEET, firing)
    worker.close()
    assert worker.router.sent == {ALERTMANAGER: 1}
    assert len(ours(alertmanager, firing.id)) == 1


# --------------------------------------------------------------------------- webhook


def test_webhook_receives_slack_text(hook: Hook, device: Device) -> None:
    router = AlertRouter(webhook_url=hook_url(hook))
    firing = device.window(91.0)
    router.route(FLEET, firing)
    router.route(FLEET, device.command("ack", alert=firing.id))
    router.route(FLEET, device.window(70.0))
    assert router.sent == {WEBHOOK: 3} and not router.errors
    assert [ctype for ctype, _ in hook.received] == ["application/json"] * 3
    texts = [body["text"] for _, body in hook.received]
    assert texts[0] == (f"[FIRING] critical {DEVICE}: {firing.message}\n"
                        "runbook: docs/runbook.md#performance-and-resources")
    assert texts[1].startswith(f"[ACKNOWLEDGED] critical {DEVICE}: temperature: ")
    assert texts[2].startswith(f"[RESOLVED] critical {DEVICE}: temperature: resolved")
    assert [set(body) for _, body in hook.received] == [{"text"}] * 3


def test_webhook_refusal_is_counted_and_not_retried(hook: Hook, device: Device) -> None:
    hook.status = 400
    router = AlertRouter(webhook_url=hook_url(hook))
    router.route(FLEET, device.window(91.0))
    assert router.errors == {WEBHOOK: 1} and router.pending == 0 and not router.sent


def test_both_targets_and_one_down(hook: Hook, device: Device) -> None:
    router = AlertRouter(alertmanager_url=f"http://127.0.0.1:{free_port()}",
                         webhook_url=hook_url(hook), timeout_s=2.0)
    router.route(FLEET, device.window(91.0))
    assert router.sent == {WEBHOOK: 1} and router.errors == {ALERTMANAGER: 1}
    assert router.pending == 1


# --------------------------------------------------------------------------- payloads


def test_resolved_end_is_clamped_between_since_and_now(device: Device) -> None:
    firing = device.window(91.0)
    now = firing.since + 1000.0
    resolved = msgspec.structs.replace(firing, state="resolved",
                                       updated=now + 500.0)  # device clock ahead
    assert alertmanager_alert(FLEET, resolved, now)["endsAt"] == rfc3339(now)
    early = msgspec.structs.replace(firing, state="resolved", updated=firing.since - 5.0)
    assert alertmanager_alert(FLEET, early, now)["endsAt"] == rfc3339(firing.since)
    assert "generatorURL" not in alertmanager_alert(FLEET, firing, now)
    assert alertmanager_alert(FLEET, firing, now, generator_url="http://grafana/x")[
        "generatorURL"] == "http://grafana/x"


def test_slack_text_and_odd_payloads() -> None:
    snoozed = Alert(id="a1", rule="r", state="snoozed", severity="info", window=Span(),
                    since=0.0, updated=0.0, device="d", message="m")
    text = "[SNOOZED] info d: m\nrunbook: docs/runbook.md"  # a metric without a section
    assert slack_text(snoozed) == text
    as_json = {"schema": "edgewatch.alert/1", **msgspec.to_builtins(snoozed)}
    assert slack_text(as_json) == text  # a JSON object is decoded first
    router = AlertRouter(alertmanager_url="http://127.0.0.1:9", webhook_url="http://x.invalid")
    router.route(FLEET, {"since": 1e300})  # not an alert message: counted, not raised
    assert router.errors == {"payload": 1} and router.pending == 0
    # built in code (never decoded): a time no calendar holds
    router.route(FLEET, msgspec.structs.replace(snoozed, since=1e300))
    assert router.errors == {"payload": 2} and router.pending == 0


@pytest.mark.parametrize("url", ["ftp://host/x", "not a url", "http://", "http://h:99999"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="expected an http"):
        AlertRouter(alertmanager_url=url)
    with pytest.raises(ConfigError, match="webhook_url"):
        AlertRouter(webhook_url=url)


def test_logs_do_not_leak_the_webhook_secret(caplog: pytest.LogCaptureFixture,
                                             device: Device) -> None:
    router = AlertRouter(webhook_url=f"http://127.0.0.1:{free_port()}/hooks/SECRET-TOKEN")
    router.route(FLEET, device.window(91.0))
    assert router.errors == {WEBHOOK: 1}
    assert "SECRET-TOKEN" not in caplog.text and "127.0.0.1" in caplog.text
