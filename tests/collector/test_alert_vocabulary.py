"""One alert vocabulary: the devices' own rules (routed by the collector) and the Prometheus
rules never page twice for one thing, every alert links to a runbook section that exists,
and the shipped Alertmanager configuration inhibits the consequences of a cause, checked
by a real Alertmanager and amtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edgewatch.collector.alert_payloads import (
    RUNBOOK_SECTIONS,
    alert_name,
    alertmanager_alert,
    runbook_url,
)
from edgewatch.config.agent import AlertsConfig
from edgewatch.contracts.alert import Alert, Span
from support.alertmanager import AlertmanagerServer, alertmanager_binary
from support.paths import REPO

RULES = REPO / "configs" / "prometheus" / "edgewatch-rules.yml"
ALERTMANAGER_CONFIG = REPO / "configs" / "alertmanager" / "alertmanager.yml"
RUNBOOK = REPO / "docs" / "runbook.md"
DEVICE_METRICS = {
    # what the device's default rules watch -> the metric the collector exports for it
    "drift.severity": "edgewatch_drift_severity", "anomaly.rate": "edgewatch_anomaly_rate",
    "quality": "edgewatch_quality_fault_frames",
    "latency.p95": "edgewatch_inference_latency_seconds",
    "temperature": "edgewatch_temperature_celsius", "disk": "edgewatch_disk_percent",
    "outbox.pending": "edgewatch_outbox_pending_messages",
}


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return out


def prometheus_rules() -> list[dict[str, str]]:
    """(alert, expr, runbook_url) of each rule in the shipped rules file."""
    text = RULES.read_text(encoding="utf-8")
    rules = []
    for block in re.split(r"(?m)^      - alert: ", text)[1:]:
        name = block.split("\n", 1)[0].strip()
        expr = re.search(r"expr: (>-\n(?:\s{10,}.*\n)+|.*)", block)
        url = re.search(r'runbook_url: "([^"]+)"', block)
        rules.append({"alert": name, "expr": expr.group(1) if expr else "",
                      "runbook_url": url.group(1) if url else ""})
    return rules


def test_every_alert_links_to_a_runbook_section_that_exists() -> None:
    sections = anchors(RUNBOOK.read_text(encoding="utf-8"))
    rules = prometheus_rules()
    assert len(rules) == RULES.read_text(encoding="utf-8").count("- alert: ")
    for rule in rules:
        page, _, section = rule["runbook_url"].partition("#")
        assert page == "docs/runbook.md" and section in sections, rule
    for rule in AlertsConfig().rules:  # the devices' default rules
        assert RUNBOOK_SECTIONS[rule.metric] in sections, rule.name
    for metric, section in RUNBOOK_SECTIONS.items():
        assert section in sections, metric


def test_nothing_pages_twice() -> None:
    """A device rule's alert name is not a Prometheus alert, and no Prometheus rule watches
    what a device rule already judges (one drift, one notification)."""
    rules = prometheus_rules()
    names = {r["alert"] for r in rules}
    defaults = AlertsConfig().rules
    assert not names & {alert_name(r.name) for r in defaults}
    for rule in defaults:
        exported = DEVICE_METRICS.get(rule.metric)
        for prom in rules:
            assert exported is None or exported not in prom["expr"], (rule.name, prom["alert"])
    assert all(n.startswith("Edgewatch") for n in names | {alert_name(r.name)
                                                          for r in defaults})


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed")
def test_amtool_accepts_the_shipped_alertmanager_configuration() -> None:
    done = subprocess.run(["amtool", "check-config", str(ALERTMANAGER_CONFIG)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 inhibit rules" in done.stdout


def device_alert(device: str, rule: str, metric: str, group: str, subject: str = "",
                 now: float = 0.0) -> dict[str, Any]:
    """What the collector sends to Alertmanager for a device rule's firing alert."""
    alert = Alert(id=f"{device}-{rule}", rule=rule, state="firing", severity="critical",
                  window=Span(now - 60, now), since=now - 60, updated=now, subject=subject,
                  metric=metric, message=f"{rule} on {device}", device=device, group=group)
    assert runbook_url(alert).startswith("docs/runbook.md#")
    return alertmanager_alert("depot", alert, now)


def prometheus_alert(name: str, now: float, **labels: str) -> dict[str, Any]:
    """A Prometheus rule's alert as Prometheus sends it."""
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    return {"labels": {"alertname": name, "severity": "warning", **labels},
            "annotations": {"summary": name}, "startsAt": iso}


@pytest.mark.skipif(alertmanager_binary() is None, reason="Alertmanager not installed")
def test_the_shipped_inhibition_rules_hold_in_a_real_alertmanager(tmp_path: Path) -> None:
    now = time.time()
    alerts = [
        # cam-1 is offline: its drift incident must not page as well
        prometheus_alert("EdgewatchDeviceOffline", now, device="cam-1", fleet="depot"),
        device_alert("cam-1", "drift", "drift.severity", "drift", now=now),
        # cam-2 lost its picture: no signal pages, its drift incident does not
        device_alert("cam-2", "no-signal", "signal", "quality", "black", now=now),
        device_alert("cam-2", "drift", "drift.severity", "drift", now=now),
        # cam-3 drifts and nothing explains it: it pages
        device_alert("cam-3", "drift", "drift.severity", "drift", now=now),
        prometheus_alert("EdgewatchDeviceStale", now, device="cam-4", fleet="depot"),
    ]
    config = ALERTMANAGER_CONFIG.read_text(encoding="utf-8")
    with AlertmanagerServer(tmp_path, config=config) as am:
        request = urllib.request.Request(
            f"{am.url}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        deadline = time.monotonic() + 20
        while True:
            found = {(a["labels"]["alertname"], a["labels"]["device"]):
                     bool(a["status"]["inhibitedBy"]) for a in am.alerts()}
            if (len(found) == len(alerts) and any(found.values())) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert found == {
        ("EdgewatchDeviceOffline", "cam-1"): False, ("EdgewatchDrift", "cam-1"): True,
        ("EdgewatchNoSignal", "cam-2"): False, ("EdgewatchDrift", "cam-2"): True,
        ("EdgewatchDrift", "cam-3"): False, ("EdgewatchDeviceStale", "cam-4"): False,
    }
