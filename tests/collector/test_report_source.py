"""The fleet and device reports from a real collector store (several devices of one
model, two drifting, one standing apart from its peers), through ``edgewatch report
--config`` and the collector's ``GET /report``, opened in headless Chromium."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from edgewatch.cli import main
from edgewatch.collector.metrics import serve
from edgewatch.collector.report_source import device_data, fleet_data, http_report
from edgewatch.collector.store import Store, open_store
from edgewatch.config.collector import load_collector_config
from edgewatch.contracts import Manifest, Status
from support.browser import assert_renders
from support.windows import day_of_windows, reference_of

FLEET = "depot"
WINDOWS = 120
DRIFTS = {"cam-a": (0, 0), "cam-b": (0, 0), "cam-c": (40, 60), "cam-d": (60, WINDOWS)}
START = 1767225600.0
NOW = START + WINDOWS * 60.0 + 30.0


def _populate(store: Store) -> None:
    for device, drift in DRIFTS.items():
        windows = day_of_windows(WINDOWS, seed=len(device) + ord(device[-1]), drift=drift,
                                 device=device)
        reference = msgspec.structs.replace(reference_of(windows[0]), device=device)
        manifest = Manifest(device, FLEET, "boot-1", START, "ssdlite", "0" * 64, "ssd",
                            reference.id, "1" * 64, agent_version="0.test")
        store.ingest("status", FLEET, device,
                     Status("online", device, "boot-1", START, manifest=manifest), START)
        store.ingest("reference", FLEET, device, reference, START)
        for seq, w in enumerate(windows, 1):
            w = msgspec.structs.replace(w, boot_id="boot-1", seq=seq)
            store.ingest("summary", FLEET, device, w, w.window.end + 1.0)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "collector.db"}"\n')
    with open_store(load_collector_config(cfg).store.url) as store:
        _populate(store)
    return cfg


def test_fleet_data_finds_states_outliers_and_models(config: Path) -> None:
    cfg = load_collector_config(config)
    with open_store(cfg.store.url) as store:
        found = fleet_data(store, cfg, FLEET, NOW)
    assert [d.device for d in found.devices] == sorted(DRIFTS)
    assert {d.device: d.severity for d in found.devices}["cam-d"] == "drift"
    assert all(d.state == "online" and len(d.timeline) > 0 for d in found.devices)
    assert any(o["device"] == "cam-d" and o["feature"] == "brightness" for o in found.outliers)
    assert found.models and found.models[0]["drifting now"] == 1


def test_device_data_carries_manifest_and_windows(config: Path) -> None:
    cfg = load_collector_config(config)
    with open_store(cfg.store.url) as store:
        found = device_data(store, cfg, "cam-c", NOW, since=START + 60.0 * 30)
    assert len(found.summaries) == WINDOWS - 29
    assert found.manifest["agent_version"] == "0.test" and found.reference is not None
    assert found.advisory is not None


def test_fleet_and_device_reports_render_in_chromium(config: Path, tmp_path: Path) -> None:
    fleet, device = tmp_path / "fleet.html", tmp_path / "device.html"
    assert main(["report", "--config", str(config), "--fleet", FLEET, "--out", str(fleet)]) == 0
    assert main(["report", "--config", str(config), "--device", "cam-d", "--since",
                 "2026-01-01T00:30:00Z", "--out", str(device)]) == 0
    page = fleet.read_text()
    assert "Outliers against peers" in page and "cam-d brightness" in page
    assert_renders(fleet, "fleet-store")
    assert "<h3>brightness</h3>" in device.read_text()
    assert_renders(device, "device-store")
    assert main(["report", "--config", str(config), "--device", "nope",
                 "--out", str(device)]) == 1


def test_collector_serves_the_report_beside_metrics(config: Path) -> None:
    cfg = load_collector_config(config)
    with serve(CollectorRegistry(), "127.0.0.1", 0, report=http_report(cfg, lambda: NOW)) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        with urllib.request.urlopen(f"{base}/report?device=cam-d", timeout=30) as r:
            assert r.headers["Content-Type"].startswith("text/html")
            assert b"edgewatch report: cam-d" in r.read()
        with urllib.request.urlopen(f"{base}/report?fleet={FLEET}", timeout=30) as r:
            assert b"fleet report" in r.read()
        with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
            assert r.status == 200
        for query, status in (("device=nope", 404), ("", 400), ("device=a&fleet=b", 400)):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"{base}/report?{query}", timeout=30)
            assert err.value.code == status
