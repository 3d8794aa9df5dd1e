"""The collector's Prometheus metrics: a real SQLite store, a real HTTP scrape over loopback,
and promtool on the exposition, the alerting rules and the Prometheus configuration; the
Grafana dashboard and the rules may only query metrics the collector exports.

Messages are stored as the ingest stores them: decoded by the contracts (schema-1 summaries
compacted to schema 2) and written as their canonical JSON. Rows written otherwise (an older
collector's schema-1 JSON, damaged or absurd rows) are inserted in SQL directly.

promtool comes with the Debian package ``prometheus``; its checks are skipped without it.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgewatch.cli.fleet_text import status_text
from edgewatch.clock import ManualClock
from edgewatch.collector.fleet_report import device_row
from edgewatch.collector.ingest_stats import IngestStats
from edgewatch.collector.metrics import (
    MAX_FEATURES,
    MAX_SENSORS,
    METRICS,
    QUALITY_FAULTS,
    FleetCollector,
    MetricsServer,
    make_registry,
    serve,
)
from edgewatch.collector.store import Store, open_store
from edgewatch.contracts.codec import REASONS, Message, decode
from edgewatch.contracts.summary import Summary
from edgewatch.contracts.summary_v1 import sig3
from support.paths import DATA, REPO

RULES = REPO / "configs" / "prometheus" / "edgewatch-rules.yml"
RULES_TEST = REPO / "configs" / "prometheus" / "edgewatch-rules.test.yml"
PROMETHEUS_YML = REPO / "configs" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "configs" / "grafana" / "edgewatch-fleet.json"
METRICS_DOC = REPO / "docs" / "metrics.md"
EXAMPLE: dict[str, Any] = json.loads(
    (DATA / "summary-example.json").read_text())
T0 = 1767225600.0
NOW = T0 + 60.0
STALE_AFTER_S = 300.0
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not found: install the Debian package 'prometheus'")
METRIC_NAME = re.compile(r"edgewatch_[a-z_]+")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# --------------------------------------------------------------------------- payloads


def birth(device: str, fleet: str, boot_id: str, when: float,
          reference_id: str = EXAMPLE["reference_id"]) -> dict[str, Any]:
    """A retained birth status as docs/mqtt.md describes it."""
    return {"schema": "edgewatch.status/1", "state": "online", "time": when,
            "device": device, "boot_id": boot_id, "manifest": {
                "device": device, "fleet": fleet, "boot_id": boot_id, "started": when - 5,
                "model_name": "ssdlite_mobilenet_v2_coco.onnx", "model_sha256": "9c1e" * 16,
                "adapter": "ssd", "reference_id": reference_id, "config_sha256": "51d0" * 16,
                "agent_version": "0.1.0", "feature_set_version": "1"}}


def last_will(device: str, boot_id: str) -> dict[str, Any]:
    return {"schema": "edgewatch.status/1", "state": "offline", "time": None,
            "reason": "connection lost", "device": device, "boot_id": boot_id}


def summary(device: str, boot_id: str, seq: int, end: float, **changes: Any) -> dict[str, Any]:
    """The example summary as ``device`` sends it, its 10 s window ending at ``end``."""
    payload = copy.deepcopy(EXAMPLE)
    payload.update(device=device, boot_id=boot_id, seq=seq)
    payload["window"] = {"start": end - 10.0, "end": end, "windows": 1}
    payload.update(changes)
    return payload


def alert(device: str, boot_id: str, seq: int, state: str) -> dict[str, Any]:
    return {"schema": "edgewatch.alert/1", "device": device, "boot_id": boot_id, "seq": seq,
            "id": "drift-brightness", "rule": "drift", "state": state, "severity": "critical",
            "message": "brightness drifted", "window": {"start": T0 + 20, "end": T0 + 30},
            "since": T0 + 30, "updated": T0 + 30}


def message(kind: str, payload: dict[str, Any]) -> Message:
    """The payload decoded as the ingest decodes what it receives."""
    return decode(kind, json.dumps(payload).encode())


def put(store: Store, kind: str, fleet: str, payload: dict[str, Any], received: float) -> bool:
    """Store one message as the ingest does; True when it was new."""
    return store.ingest(kind, fleet, payload["device"], message(kind, payload), received)


def ingest(store: Store, stats: IngestStats, kind: str, fleet: str, payload: dict[str, Any],
           received: float) -> None:
    """Store one message and count it as the Ingestor does."""
    stats.received += 1
    if put(store, kind, fleet, payload, received):
        stats.stored[kind] += 1
    else:
        stats.duplicates += 1


def drifting(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with brightness drifted: histogram reversed, verdict drift."""
    counts = payload["features"]["brightness"]["counts"]
    payload["features"]["brightness"]["counts"] = counts[::-1]
    payload["drift"]["severity"] = "drift"
    payload["drift"]["detected"] = True
    payload["drift"]["score"] = 2.5
    payload["drift"]["features"]["brightness"].update(effect=2.5, status="drift", streak=3)
    return payload


def populate(store: Store, stats: IngestStats) -> None:
    """Fleet depot: cam-1, cam-2 fine, cam-3 drifting, cam-4 offline
    (drifting when it left), cam-5 stale;
    fleet yard: cam-9 with another reference."""
    for device in ("cam-1", "cam-2", "cam-3", "cam-4"):
        ingest(store, stats, "status", "depot", birth(device, "depot", f"b-{device}", T0 - 30),
               T0 - 30)
    ingest(store, stats, "status", "depot", birth("cam-5", "depot", "b-cam-5", T0 - 2000),
           T0 - 2000)
    ingest(store, stats, "status", "yard",
           birth("cam-9", "yard", "b-cam-9", T0 - 30, reference_id="ref-yard"), T0 - 30)

    one = summary("cam-1", "b-cam-1", 1, T0 + 50)
    one["resources"]["temperatures_c"] = {"coretemp": 61.5, "acpitz": 48.0}
    one["quality"] = {"black": 3, "frozen": 7}
    ingest(store, stats, "summary", "depot", one, T0 + 51)
    ingest(store, stats, "summary", "depot", one, T0 + 52)  # a redelivery

    ingest(store, stats, "summary", "depot", summary("cam-2", "b-cam-2", 1, T0 + 40), T0 + 41)
    late = summary("cam-2", "b-cam-2", 3, T0 + 50, historical=True)  # seq 2 never arrives
    ingest(store, stats, "summary", "depot", late, T0 + 55)

    three = drifting(summary("cam-3", "b-cam-3", 1, T0 + 50))
    three["frames"].update(seen=100, monitored=20, sampled_out=70, dropped=10)
    three["outbox"] = {"pending": 4, "in_memory": 2, "degraded": "disk full"}
    ingest(store, stats, "summary", "depot", three, T0 + 51)
    ingest(store, stats, "alert", "depot", alert("cam-3", "b-cam-3", 2, "firing"), T0 + 52)

    four = drifting(summary("cam-4", "b-cam-4", 1, T0 + 10))  # its last verdict, then gone
    ingest(store, stats, "summary", "depot", four, T0 + 11)
    ingest(store, stats, "status", "depot", last_will("cam-4", "b-cam-4"), T0 + 20)

    five = summary("cam-5", "b-cam-5", 1, T0 - 1000)
    five["drift"]["severity"] = "ok"
    ingest(store, stats, "summary", "depot", five, T0 - 999)

    nine = summary("cam-9", "b-cam-9", 1, T0 + 50, reference_id="ref-yard")
    ingest(store, stats, "summary", "yard", nine, T0 + 51)
    stats.bad["encoding"] += 2
    stats.store_errors = 1
    stats.connected = True


# --------------------------------------------------------------------------- scraping


@dataclass
class Scrape:
    text: str
    content_type: str

    @property
    def samples(self) -> Samples:
        return parse(self.text)

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def fetch(server: MetricsServer) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
        return Scrape(r.read().decode("utf-8"), r.headers.get("Content-Type", ""))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, IngestStats]]:
    db = tmp_path_factory.mktemp("metrics") / "collector.db"
    store = open_store("sqlite:///" + str(db))
    stats = IngestStats()
    populate(store, stats)
    yield store, stats
    store.close()


@pytest.fixture(scope="module")
def scrape(fleet: tuple[Store, IngestStats]) -> Scrape:
    store, stats = fleet
    registry = make_registry(store, stats, ManualClock(NOW), STALE_AFTER_S)
    with serve(registry, "127.0.0.1", 0) as server:
        return fetch(server)


# --------------------------------------------------------------------------- values


def test_device_status_metrics(scrape: Scrape) -> None:
    s = scrape.samples
    assert scrape.content_type.startswith("text/plain")
    online = {d: value(s, "edgewatch_device_online", device=d, fleet="depot")
              for d in ("cam-1", "cam-2", "cam-3", "cam-4", "cam-5")}
    assert online == {"cam-1": 1, "cam-2": 1, "cam-3": 1, "cam-4": 0, "cam-5": 1}
    assert value(s, "edgewatch_device_stale", device="cam-5", fleet="depot") == 1
    assert value(s, "edgewatch_device_stale", device="cam-1", fleet="depot") == 0
    assert value(s, "edgewatch_device_window_age_seconds", device="cam-1", fleet="depot") == 10
    assert value(s, "edgewatch_device_window_age_seconds", device="cam-5", fleet="depot") == 1060
    assert value(s, "edgewatch_device_last_window_end_timestamp_seconds", device="cam-1",
                 fleet="depot") == T0 + 50
    assert value(s, "edgewatch_device_last_seen_timestamp_seconds", device="cam-1",
                 fleet="depot") == T0 + 52
    assert value(s, "edgewatch_device_info", device="cam-9", fleet="yard",
                 model="ssdlite_mobilenet_v2_coco.onnx", adapter="ssd",
                 reference_id="ref-yard", agent_version="0.1.0") == 1
    assert value(s, "edgewatch_seq_gaps", device="cam-2", fleet="depot") == 1
    assert value(s, "edgewatch_seq_gaps", device="cam-1", fleet="depot") == 0
    assert value(s, "edgewatch_historical_messages", device="cam-2", fleet="depot") == 1
    assert value(s, "edgewatch_device_summaries", device="cam-2", fleet="depot") == 2
    assert value(s, "edgewatch_active_alerts", device="cam-3", fleet="depot") == 1
    assert value(s, "edgewatch_active_alerts", device="cam-1", fleet="depot") == 0


def test_drift_metrics(scrape: Scrape) -> None:
    s = scrape.samples
    assert value(s, "edgewatch_drift_severity", device="cam-1", fleet="depot") == 1
    assert value(s, "edgewatch_drift_severity", device="cam-3", fleet="depot") == 2
    assert value(s, "edgewatch_drift_severity", device="cam-5", fleet="depot") == 0
    assert value(s, "edgewatch_drift_score", device="cam-3", fleet="depot") == 2.5
    assert value(s, "edgewatch_drift_insufficient_data", device="cam-3", fleet="depot") == 0
    effect = value(s, "edgewatch_feature_drift_effect", device="cam-1", fleet="depot",
                   feature="position")
    # the device's effect at the precision summaries carry (three significant digits)
    assert effect == sig3(EXAMPLE["drift"]["features"]["position"]["effect"])
    assert value(s, "edgewatch_feature_drift_status", device="cam-1", fleet="depot",
                 feature="position") == 1
    assert value(s, "edgewatch_feature_drift_effect", device="cam-3", fleet="depot",
                 feature="brightness") == 2.5
    assert value(s, "edgewatch_feature_drift_status", device="cam-3", fleet="depot",
                 feature="brightness") == 2
    features = {dict(labels)["feature"] for name, labels in s
                if name == "edgewatch_feature_drift_effect" and ("device", "cam-1") in labels}
    assert features == set(EXAMPLE["drift"]["features"])


def test_frame_latency_and_resource_metrics(scrape: Scrape) -> None:
    s = scrape.samples
    cam1 = {"device": "cam-1", "fleet": "depot"}
    assert value(s, "edgewatch_frames_per_second", **cam1) == pytest.approx(10.0)
    assert value(s, "edgewatch_window_duration_seconds", **cam1) == 10.0
    assert value(s, "edgewatch_frames_dropped_ratio", **cam1) == 0.0
    # of the 30 frames sampling selected, 10 were dropped
    assert value(s, "edgewatch_frames_dropped_ratio", device="cam-3",
                 fleet="depot") == pytest.approx(1 / 3)
    assert value(s, "edgewatch_window_frames", category="dropped", device="cam-3",
                 fleet="depot") == 10
    # recomputed from the sketch: the percentiles the agent computed from the same sketch
    inference = EXAMPLE["latency"]["inference_ms"]
    for percentile, field in (("50", "p50"), ("95", "p95"), ("99", "p99")):
        got = value(s, "edgewatch_inference_latency_seconds", percentile=percentile, **cam1)
        assert got == pytest.approx(inference[field] / 1000.0, rel=1e-12)
    assert value(s, "edgewatch_frame_latency_seconds", percentile="95", **cam1) == (
        pytest.approx(EXAMPLE["latency"]["total_ms"]["p95"] / 1000.0, rel=1e-12))
    assert value(s, "edgewatch_frame_latency_seconds", percentile="99", **cam1) == (
        pytest.approx(EXAMPLE["latency"]["total_ms"]["p99"] / 1000.0, rel=1e-6))
    res = EXAMPLE["resources"]
    assert value(s, "edgewatch_process_cpu_percent", **cam1) == res["process_cpu_percent"]
    assert value(s, "edgewatch_process_rss_bytes", **cam1) == res["process_rss_mb"] * 2**20
    assert value(s, "edgewatch_disk_percent", **cam1) == res["disk_percent"]
    assert value(s, "edgewatch_temperature_celsius", sensor="coretemp", **cam1) == 61.5
    assert value(s, "edgewatch_anomaly_rate", **cam1) == EXAMPLE["anomaly"]["rate"]
    assert value(s, "edgewatch_quality_fault_frames", fault="frozen", **cam1) == 7
    assert value(s, "edgewatch_quality_fault_frames", fault="blurred", **cam1) == 0
    assert value(s, "edgewatch_outbox_degraded", device="cam-3", fleet="depot") == 1
    assert value(s, "edgewatch_outbox_pending_messages", device="cam-3", fleet="depot") == 4
    assert ("edgewatch_outbox_degraded", (("device", "cam-1"), ("fleet", "depot"))) not in s


def test_fleet_and_peer_metrics(scrape: Scrape) -> None:
    s = scrape.samples
    depot = {st: value(s, "edgewatch_fleet_devices", fleet="depot", state=st)
             for st in ("online", "offline", "stale")}
    assert depot == {"online": 3, "offline": 1, "stale": 1}
    assert value(s, "edgewatch_fleet_devices", fleet="yard", state="online") == 1
    assert value(s, "edgewatch_fleet_drifting_devices", fleet="depot") == 1
    assert value(s, "edgewatch_fleet_drifting_devices", fleet="yard") == 0
    by_severity = {sev: value(s, "edgewatch_fleet_severity_devices", fleet="depot",
                              severity=sev) for sev in ("ok", "warning", "drift")}
    assert by_severity == {"ok": 1, "warning": 2, "drift": 1}  # cam-4 (offline) not counted
    outliers = {(dict(labels)["device"], dict(labels)["feature"]): v
                for (name, labels), v in s.items() if name == "edgewatch_peer_outlier"}
    assert set(outliers) == {("cam-3", "brightness")}
    assert 0.3 < outliers[("cam-3", "brightness")] <= 1.0


def test_fleet_status_counts_what_the_metrics_count(scrape: Scrape,
                                                   fleet: tuple[Store, IngestStats]) -> None:
    """``edgewatch fleet status`` and Prometheus agree: an offline device's last verdict
    is history, not a drifting device."""
    s = scrape.samples
    total = {st: sum(value(s, "edgewatch_fleet_devices", fleet=f, state=st)
                     for f in ("depot", "yard")) for st in ("online", "stale", "offline")}
    drifting = sum(value(s, "edgewatch_fleet_drifting_devices", fleet=f)
                   for f in ("depot", "yard"))
    store, _ = fleet
    table = status_text([device_row(d, NOW, STALE_AFTER_S) for d in store.devices()], NOW)
    assert table.splitlines()[-1] == (
        f"{sum(total.values()):.0f} devices: {total['online']:.0f} online, "
        f"{total['stale']:.0f} stale, {total['offline']:.0f} offline; {drifting:.0f} drifting "
        "(offline devices not counted)")
    assert drifting == 1
    rows = {r["device"]: r for r in (device_row(d, NOW, STALE_AFTER_S)
                                     for d in store.devices())}
    assert (rows["cam-4"]["state"], rows["cam-4"]["drift_severity"],
            rows["cam-4"]["drifting"]) == ("offline", "drift", False)
    assert (rows["cam-5"]["state"], rows["cam-3"]["drifting"]) == ("stale", True)


def test_peer_outliers_can_be_turned_off(fleet: tuple[Store, IngestStats]) -> None:
    store, _ = fleet
    names = {f.name for f in FleetCollector(store, None, ManualClock(NOW), STALE_AFTER_S,
                                            peers=False).collect()}
    assert "edgewatch_peer_outlier" not in names and "edgewatch_drift_score" in names


def test_ingest_counters(scrape: Scrape) -> None:
    s = scrape.samples
    assert value(s, "edgewatch_collector_connected") == 1
    assert value(s, "edgewatch_collector_store_up") == 1
    assert value(s, "edgewatch_collector_messages_total", kind="summary") == 7
    assert value(s, "edgewatch_collector_messages_total", kind="status") == 7
    assert value(s, "edgewatch_collector_messages_total", kind="alert") == 1
    assert value(s, "edgewatch_collector_messages_total", kind="cmd_result") == 0
    assert value(s, "edgewatch_collector_duplicates_total") == 1
    assert value(s, "edgewatch_collector_received_messages_total") == 16
    assert value(s, "edgewatch_collector_bad_payloads_total", reason="encoding") == 2
    assert value(s, "edgewatch_collector_bad_payloads_total", reason="schema") == 0
    reasons = {dict(labels)["reason"] for name, labels in s
               if name == "edgewatch_collector_bad_payloads_total"}
    assert reasons == set(REASONS)  # every refusal reason of the contracts, always
    assert value(s, "edgewatch_collector_store_errors_total") == 1
    for reason in ("invalid", "undecodable"):  # every stored value of the fleet exported
        assert value(s, "edgewatch_collector_unexportable_values_total", reason=reason) == 0


# --------------------------------------------------------------------------- exposition


@needs_promtool
def test_promtool_accepts_the_exposition(scrape: Scrape) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=scrape.text, text=True,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == "", done.stdout + done.stderr


def test_every_declared_metric_is_exported_and_documented(scrape: Scrape) -> None:
    declared = {m.name for m in METRICS}
    exported = {n for n in scrape.names if n.startswith("edgewatch_")}
    assert exported == declared  # the test fleet exercises every metric
    doc = METRICS_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"`(edgewatch_[a-z_]+)`", doc))
    assert declared - documented == set(), "undocumented in docs/metrics.md"
    assert documented - declared == set(), "documented but not exported"
    for m in METRICS:
        assert m.kind == "counter" or not m.name.endswith("_total"), m.name
        assert m.kind != "counter" or m.name.endswith("_total"), m.name
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{m.name}` |"))
        assert f"| {m.kind} |" in row, m.name
        for label in set(m.labels) - {"device", "fleet"}:
            assert f"`{label}`" in row, (m.name, label)


def test_quality_faults_match_the_agent() -> None:
    from edgewatch.agent.measure.quality import QUALITY_FAULTS as AGENT_FAULTS

    assert tuple(AGENT_FAULTS) == QUALITY_FAULTS


def test_registry_is_private() -> None:
    from prometheus_client import REGISTRY

    assert not any(n.startswith("edgewatch_") for n in REGISTRY._names_to_collectors)


# --------------------------------------------------------------------------- behaviour


def test_store_is_read_at_every_scrape(tmp_path: Path) -> None:
    store = open_store("sqlite:///" + str(tmp_path / "c.db"))
    clock = ManualClock(NOW)
    registry = make_registry(store, None, clock, STALE_AFTER_S, process_metrics=False)
    with store, serve(registry, "127.0.0.1", 0) as server:
        first = fetch(server).samples
        assert value(first, "edgewatch_collector_store_up") == 1
        assert not any(n.startswith("edgewatch_device") for n, _ in first)
        assert not any(n.startswith("edgewatch_collector_messages") for n, _ in first)

        put(store, "status", "depot", birth("cam-1", "depot", "b1", NOW - 5), NOW - 5)
        put(store, "summary", "depot", summary("cam-1", "b1", 1, NOW - 1), NOW)
        second = fetch(server).samples
        assert value(second, "edgewatch_device_online", device="cam-1", fleet="depot") == 1
        assert value(second, "edgewatch_fleet_devices", fleet="depot", state="online") == 1

        clock.advance(STALE_AFTER_S + 10)
        third = fetch(server).samples
        assert value(third, "edgewatch_device_stale", device="cam-1", fleet="depot") == 1
        assert value(third, "edgewatch_fleet_devices", fleet="depot", state="stale") == 1
        assert value(third, "edgewatch_device_window_age_seconds", device="cam-1",
                     fleet="depot") == STALE_AFTER_S + 11


def test_unreadable_store_keeps_the_endpoint_up(tmp_path: Path) -> None:
    store = open_store("sqlite:///" + str(tmp_path / "c.db"))
    put(store, "status", "depot", birth("cam-1", "depot", "b1", NOW), NOW)
    stats = IngestStats(received=3)
    registry = make_registry(store, stats, ManualClock(NOW), STALE_AFTER_S,
                             process_metrics=False)
    store.close()  # every read now raises StoreError
    with serve(registry, "127.0.0.1", 0) as server:
        s = fetch(server).samples
    assert value(s, "edgewatch_collector_store_up") == 0
    assert value(s, "edgewatch_collector_received_messages_total") == 3
    assert not any(name.startswith("edgewatch_device") for name, _ in s)


def _insert_row(db: Path, device: str, seq: int, payload: str, end: float) -> None:
    """A summary row written by something else than this collector's ingest."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO messages (device, boot_id, seq, kind, fleet, received, window_start, "
            "window_end, historical, alert_id, alert_state, payload) "
            "VALUES (?, 'b', ?, 'summary', 'depot', ?, ?, ?, FALSE, NULL, NULL, ?)",
            (device, seq, end, end - 10.0, end, payload))
    conn.close()


def test_rows_that_cannot_be_exported_do_not_fail_the_scrape(tmp_path: Path) -> None:
    """A damaged or absurd row in the store leaves its values out, counted; the scrape of
    the real endpoint still answers with every other device's metrics, and rows an older
    collector stored as schema-1 JSON are read."""
    db = tmp_path / "c.db"
    store = open_store(f"sqlite:///{db}")
    for device in ("cam-1", "cam-2", "cam-3", "cam-old", "cam-junk", "cam-big", "cam-inf"):
        put(store, "status", "depot", birth(device, "depot", "b", NOW - 5), NOW - 5)
    for n, device in enumerate(("cam-1", "cam-2", "cam-3")):
        put(store, "summary", "depot", summary(device, "b", 1, NOW - 1 - n), NOW)
    old = summary("cam-old", "b", 1, NOW - 1)
    old["drift"]["severity"] = "drift"
    _insert_row(db, "cam-old", 1, json.dumps(old), NOW - 1)  # schema 1, as once stored
    _insert_row(db, "cam-junk", 1, '{"schema": "edgewatch.summary/2", "window": {', NOW - 1)
    big = summary("cam-big", "b", 1, NOW - 1)
    big["drift"]["score"] = 1e308  # a float, out of the contract's bounds
    _insert_row(db, "cam-big", 1, json.dumps(big), NOW - 1)
    wild = json.loads(msgspec.json.encode(message("summary", summary("cam-inf", "b", 1,
                                                                     NOW - 1))))
    # a sketch within the contract's bounds whose quantiles overflow any float
    wild["latency"]["inference_ms"] = [1, 0, 5.0, [2**31 - 1], [1], 0.5]
    _insert_row(db, "cam-inf", 1, json.dumps(wild), NOW - 1)
    with sqlite3.connect(db) as conn:  # a manifest that does not decode
        conn.execute("UPDATE devices SET manifest = '[1, 2' WHERE device = 'cam-3'")
    conn.close()

    registry = make_registry(store, IngestStats(), ManualClock(NOW), STALE_AFTER_S,
                             process_metrics=False)
    with store, serve(registry, "127.0.0.1", 0) as server:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                    timeout=10) as r:
            assert r.status == 200
            first = parse(r.read().decode("utf-8"))
        second = fetch(server).samples

    assert value(first, "edgewatch_collector_store_up") == 1
    for device in ("cam-1", "cam-2", "cam-3"):
        assert value(first, "edgewatch_drift_severity", device=device, fleet="depot") == 1
        assert value(first, "edgewatch_inference_latency_seconds", device=device,
                     fleet="depot", percentile="95") > 0
    assert value(first, "edgewatch_drift_severity", device="cam-old", fleet="depot") == 2
    assert value(first, "edgewatch_inference_latency_seconds", device="cam-old",
                 fleet="depot", percentile="50") == pytest.approx(
        EXAMPLE["latency"]["inference_ms"]["p50"] / 1000.0, rel=1e-12)
    for device in ("cam-junk", "cam-big"):  # the device is there, its summary is not
        assert value(first, "edgewatch_device_online", device=device, fleet="depot") == 1
        assert ("edgewatch_drift_severity",
                (("device", device), ("fleet", "depot"))) not in first
    cam_inf = (("device", "cam-inf"), ("fleet", "depot"))
    assert value(first, "edgewatch_drift_severity", device="cam-inf", fleet="depot") == 1
    assert not any(name == "edgewatch_inference_latency_seconds" and set(cam_inf) <= set(lab)
                   for name, lab in first)
    assert value(first, "edgewatch_frame_latency_seconds", device="cam-inf", fleet="depot",
                 percentile="99") > 0  # the other stage of the same summary is exported
    # cam-3's manifest: info without the manifest's values, the rest as usual
    assert value(first, "edgewatch_device_info", device="cam-3", fleet="depot", model="",
                 adapter="", reference_id="", agent_version="") == 1
    # two rows and a manifest that do not decode, one sketch that overflows: per scrape
    counted = {reason: value(first, "edgewatch_collector_unexportable_values_total",
                             reason=reason) for reason in ("undecodable", "invalid")}
    assert counted == {"undecodable": 3, "invalid": 1}
    assert value(second, "edgewatch_collector_unexportable_values_total",
                 reason="undecodable") == 6  # a counter: every scrape adds what it left out


def test_label_values_are_bounded(tmp_path: Path) -> None:
    """Unknown, odd or too many names from a device cannot blow up the series count."""
    payload = summary("cam-1", "b1", 1, NOW - 1)
    features = {f"raw.out{i:03d}.mean": {"effect": 0.1, "status": "ok"} for i in range(100)}
    features["bad name{}"] = {"effect": 1.0, "status": "drift"}
    payload["drift"]["features"] = features
    payload["resources"]["temperatures_c"] = {f"sensor{i:02d}": 40.0 + i for i in range(30)}
    payload["resources"]["memory_percent"] = None
    payload["quality"] = {"black": 2, "new_fault": 5, "other_new": 1}
    one_frame = {"accuracy": 0.01, "count": 1, "zero": 0, "max": 10.0, "keys": [116],
                 "counts": [1]}  # 10 ms
    payload["latency"] = {"inference_ms": {"count": 1, "sketch": one_frame},
                          "total_ms": {"count": 0}}  # no frame timed: no percentiles
    payload["frames"] = {"seen": 0, "monitored": 0, "dropped": 0}
    payload["window"]["start"] = payload["window"]["end"]
    with open_store("sqlite:///" + str(tmp_path / "c.db")) as store:
        put(store, "status", "depot", birth("cam-1", "depot", "b1", NOW), NOW)
        put(store, "summary", "depot", payload, NOW)
        collector = FleetCollector(store, None, ManualClock(NOW), STALE_AFTER_S)
        families = {f.name: f for f in collector.collect()}
    labels = {name: [s.labels for s in fam.samples] for name, fam in families.items()}
    effects = labels["edgewatch_feature_drift_effect"]
    assert len(effects) == MAX_FEATURES
    assert all(re.fullmatch(r"raw\.out\d{3}\.mean", lab["feature"]) for lab in effects)
    assert len(labels["edgewatch_temperature_celsius"]) == MAX_SENSORS
    faults = {s.labels["fault"]: s.value
              for s in families["edgewatch_quality_fault_frames"].samples}
    assert set(faults) == {*QUALITY_FAULTS, "other"}
    assert (faults["black"], faults["other"], faults["frozen"]) == (2, 6, 0)
    for absent in ("edgewatch_memory_percent", "edgewatch_frames_per_second",
                   "edgewatch_frame_latency_seconds"):
        assert absent not in families
    latency = families["edgewatch_inference_latency_seconds"].samples
    assert [s.labels["percentile"] for s in latency] == ["50", "95", "99"]
    assert all(s.value == pytest.approx(0.01, rel=0.01) for s in latency)
    dropped = families["edgewatch_frames_dropped_ratio"].samples
    assert [s.value for s in dropped] == [0.0]


def test_server_closes_and_frees_its_port() -> None:
    registry = make_registry(_EmptyStore(), None, ManualClock(NOW), STALE_AFTER_S)
    server = serve(registry, "127.0.0.1", 0)
    port = server.port
    assert fetch(server).text
    server.close()
    server.shutdown()  # the socketserver name; idempotent
    assert not server.thread.is_alive()
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(2)
        s.connect(("127.0.0.1", port))


class _EmptyStore:
    """A store with no devices (the HTTP test needs no database)."""

    def devices(self) -> list[Any]:
        return []

    def summaries(self, device: str, limit: int = 20) -> list[Summary]:
        return []


# --------------------------------------------------------------------------- configs


@needs_promtool
@pytest.mark.parametrize("args", [
    ["check", "rules", str(RULES)],
    ["test", "rules", str(RULES_TEST)],  # the rules' unit tests
    ["check", "config", str(PROMETHEUS_YML)],
], ids=["check-rules", "test-rules", "check-config"])
def test_promtool_accepts_the_shipped_prometheus_files(args: list[str]) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        if var["type"] == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_every_metric_the_dashboard_queries_exists(scrape: Scrape) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {m for e in _dashboard_queries(dashboard) for m in METRIC_NAME.findall(e)}
    assert len(used) >= 25
    assert used - scrape.names == set()


def test_dashboard_structure() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert {"fleet", "device"} <= set(variables)
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in panels}
    assert {"Devices", "Drift effect per feature", "Latency", "Frames", "Temperature",
            "Anomaly rate", "Quality faults"} <= titles
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, p["title"]
        for t in p.get("targets", []):
            assert t["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
            assert t["expr"].strip(), p["title"]
    per_feature = next(p for p in panels if p["title"] == "Drift effect per feature")
    assert per_feature["targets"][0]["expr"] == (
        'edgewatch_feature_drift_effect{device="$device"}')
    assert per_feature["targets"][0]["legendFormat"] == "{{feature}}"


def _rule_exprs(text: str) -> list[str]:
    """The ``expr`` of every rule, folded block scalars included (no YAML library)."""
    lines = text.splitlines()
    exprs = []
    for i, line in enumerate(lines):
        match = re.match(r"(\s*)(?:- )?expr:\s*(.*)$", line)
        if match is None:
            continue
        indent, parts = len(match.group(1)), [match.group(2)]
        for following in lines[i + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            parts.append(following.strip())
        exprs.append(" ".join(p for p in parts if p not in (">-", ">", "|", "|-")).strip())
    return exprs


def test_every_metric_the_rules_query_exists(scrape: Scrape) -> None:
    exprs = _rule_exprs(RULES.read_text(encoding="utf-8"))
    assert len(exprs) == RULES.read_text(encoding="utf-8").count("- alert: ")
    assert all(METRIC_NAME.search(e) or e.startswith("up{") for e in exprs), exprs
    used = {m for e in exprs for m in METRIC_NAME.findall(e)}
    assert "edgewatch_device_window_age_seconds" in used  # from a folded (>-) expression
    assert used - scrape.names == set()
