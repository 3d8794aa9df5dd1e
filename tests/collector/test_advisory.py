"""Retrain advisories on real footage: the real SSDLite model replays vtest.avi's second half
against a reference of its first 400 frames -- untouched, noised, blurred, black -- the
summaries go into a real store (SQLite and PostgreSQL), and the advisory, the CLI, the
metric and the retained message published through a real Mosquitto broker say what to do."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from prometheus_client import generate_latest

from edgewatch.cli import main
from edgewatch.clock import ManualClock
from edgewatch.collector.advisory import (
    OUTPUT_FEATURES,
    AdvisoryReport,
    Rule,
    advise_fleet,
    report_text,
)
from edgewatch.collector.advisory_publish import AdvisoryThread
from edgewatch.collector.metrics import make_registry
from edgewatch.collector.store import Store, open_store
from edgewatch.config.collector import parse_collector_config
from edgewatch.contracts import Reference, Summary, decode_collector
from support import footage
from support.broker import MosquittoBroker

RULE = Rule(min_windows=3, min_span_s=30.0)
"""Windows of 10 s: the second half of vtest (40 s) is 4 windows."""
ADVISORY_TOML = "[advisory]\nmin_windows = 3\nmin_span_s = 30.0\n"
NOW = footage.START + 3600.0
FLEET = "depot"


@pytest.fixture(scope="module")
def replays(assets: Path, vtest: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The reference and the summaries of each scenario (one replay each, shared)."""
    work = tmp_path_factory.mktemp("advisory")
    cfg = footage.agent_config(assets, work)
    reference = footage.build_reference(cfg, vtest, work)
    ref_path = work / "reference.json"
    out: dict[str, Any] = {"reference": reference}
    out["clean"] = footage.replay(cfg, vtest, ref_path, work / "clean.jsonl", "x",
                                  frames=f"{footage.SECOND_HALF}:795")
    for name, transform in (("noise", footage.gaussian_noise(25.0)),
                            ("blur", footage.blurred(15)), ("black", footage.black)):
        frames = footage.degraded_frames(vtest, work / name, transform)
        out[name] = footage.replay(cfg, frames, ref_path, work / f"{name}.jsonl", "x")
    return out


def put_device(store: Store, device: str, reference: Reference,
               summaries: Sequence[Summary]) -> None:
    """The device's retained reference, then its summaries, as the ingest stores them."""
    store.ingest("reference", FLEET, device,
                 _as(reference, device=device), footage.START)
    for s in summaries:
        store.ingest("summary", FLEET, device, _as(s, device=device), s.window.end + 1.0)


def _as(message: Any, **changes: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(message, **changes)


@pytest.fixture
def fleet_store(store_url: str, replays: dict[str, Any]) -> Iterator[Store]:
    """cam-clean, cam-noise-1, cam-noise-2 (the same model and reference), cam-blur,
    cam-black, and cam-short (noise, but only two windows)."""
    store = open_store(store_url)
    ref = replays["reference"]
    put_device(store, "cam-clean", ref, replays["clean"])
    put_device(store, "cam-noise-1", ref, replays["noise"])
    put_device(store, "cam-noise-2", ref, replays["noise"])
    put_device(store, "cam-blur", ref, replays["blur"])
    put_device(store, "cam-black", ref, replays["black"])
    put_device(store, "cam-short", ref, replays["noise"][:2])
    yield store
    store.close()


def test_clean_footage_gives_no_advisory(replays: dict[str, Any], store_url: str) -> None:
    with open_store(store_url) as store:
        put_device(store, "cam-clean", replays["reference"], replays["clean"])
        report = advise_fleet(store, RULE, NOW)
    [a] = report.devices
    assert a.action == "none", a
    assert a.estimate is not None and a.estimate.ratio > 0.9  # as confident as the reference
    assert report.models[0].retrain == 0 and report.models[0].action == "none"
    assert report_text(report).endswith("0 advisories (0 retrain)")


def test_degraded_footage_advises_as_it_should(fleet_store: Store,
                                               replays: dict[str, Any]) -> None:
    report = advise_fleet(fleet_store, RULE, NOW)
    by = {a.device: a for a in report.devices}
    assert by["cam-clean"].action == "none"
    # gaussian noise: a persistent change with clean quality, the detector less confident
    noise = by["cam-noise-1"]
    assert noise.action == "retrain", noise
    names = [f.feature for f in noise.features]
    assert "noise" in names and "edge_density" in names
    assert noise.windows == 4 and noise.span_s == pytest.approx(40.0, abs=1.0)
    assert noise.since == pytest.approx(footage.START + 40.0)
    assert noise.quality == {} or max(noise.quality.values()) < RULE.quality_share
    clean_ratio = by["cam-clean"].estimate.ratio  # type: ignore[union-attr]
    assert noise.estimate is not None and noise.estimate.ratio < 0.9 < clean_ratio
    assert "noise" in noise.summary and noise.summary.startswith("retrain")
    ev = noise.fleet_evidence
    assert (ev.model_devices, ev.model_drifting, ev.model_retrain) == (6, 2, 2)
    assert (ev.reference_devices, ev.reference_drifting) == (6, 2)
    assert any("seen on several devices" in r for r in noise.reasons)
    assert noise.evidence_frames == 0 and noise.evidence_ids == []
    # blurred and black: the camera, not the model
    for device, fault in (("cam-blur", "blurred"), ("cam-black", "black")):
        a = by[device]
        assert a.action == "clean", a
        assert a.summary.startswith("quality: clean the lens / check the camera"), a.summary
        assert a.quality[fault] >= RULE.quality_share
        assert "do not retrain" in a.summary
    # too short to advise
    assert by["cam-short"].action == "insufficient"
    [model] = report.models
    assert (model.devices, model.retrain, model.clean, model.action, model.fleet_wide) == (
        6, 2, 2, "retrain", False)  # 2 of 6: not the majority
    assert model.advised == ("cam-noise-1", "cam-noise-2")
    # a watch when the run is shorter than the rule asks
    strict = advise_fleet(fleet_store, Rule(min_windows=3, min_span_s=600.0), NOW,
                          device="cam-noise-1")
    assert [a.action for a in strict.devices] == ["watch"]


def test_output_features_are_the_agents() -> None:
    from edgewatch.agent.measure.outputs import (
        CATEGORICAL_FEATURES,
        CLASSIFIER_FEATURES,
        DETECTOR_FEATURES,
    )

    assert {*DETECTOR_FEATURES, *CLASSIFIER_FEATURES, *CATEGORICAL_FEATURES} == OUTPUT_FEATURES


def test_cli_fleet_advise(fleet_store: Store, store_url: str, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    fleet_store.close()
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f'[store]\nurl = "{store_url}"\n{ADVISORY_TOML}')
    capsys.readouterr()
    assert main(["fleet", "advise", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "cam-noise-1 (depot): RETRAIN: retrain" in text
    assert "cam-blur (depot): CLEAN: quality: clean the lens / check the camera" in text
    assert "cam-clean (depot): NONE" in text
    assert text.rstrip().endswith("4 advisories (2 retrain)")
    assert main(["fleet", "advise", "--device", "cam-noise-2", "--json",
                 "--config", str(cfg)]) == 0
    data = json.loads(capsys.readouterr().out)
    [one] = data["devices"]
    assert one["schema"] == "edgewatch.advisory/1" and one["action"] == "retrain"
    assert data["models"][0]["retrain"] == 2
    assert main(["fleet", "advise", "--device", "nobody", "--config", str(cfg)]) == 1


def test_metric(fleet_store: Store) -> None:
    report = advise_fleet(fleet_store, RULE, NOW)
    registry = make_registry(fleet_store, clock=ManualClock(NOW), process_metrics=False,
                             advisories=lambda: report)
    text = generate_latest(registry).decode()
    assert 'edgewatch_retrain_advised{device="cam-noise-1",fleet="depot"} 1.0' in text
    assert 'edgewatch_retrain_advised{device="cam-clean",fleet="depot"} 0.0' in text
    assert 'edgewatch_camera_check_advised{device="cam-blur",fleet="depot"} 1.0' in text
    assert ('edgewatch_model_retrain_advised_devices{model="ssdlite_mobilenet_v2_coco.onnx",'
            f'model_sha256="{report.models[0].model_sha256}"}} 2.0') in text


class Retained:
    """A subscriber to every advisory topic: what the broker delivers, by topic."""

    def __init__(self, port: int) -> None:
        self.got: dict[str, bytes] = {}
        self.event = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"ops-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("edgewatch/v1/+/+/advisory", qos=1)
        self.client.loop_start()

    def _message(self, _c: Any, _u: Any, msg: Any) -> None:
        self.got[msg.topic] = msg.payload
        self.event.set()

    def wait_for(self, topic: str, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if topic in self.got:
                return self.got[topic]
            time.sleep(0.05)
        raise AssertionError(f"nothing on {topic}: {sorted(self.got)}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_the_collector_publishes_retained_advisories(broker: MosquittoBroker,
                                                    fleet_store: Store, store_url: str,
                                                    tmp_path: Path) -> None:
    fleet_store.close()
    from edgewatch.collector.service import CollectorService

    cfg = parse_collector_config({
        "mqtt": {"port": broker.port, "client_id": f"c-{uuid.uuid4().hex[:6]}"},
        "store": {"url": store_url}, "http": {"port": 0},
        "advisory": {"min_windows": 3, "min_span_s": 30.0, "interval_s": 3600.0}})
    service = CollectorService(cfg, clock=ManualClock(NOW))
    service.start()
    try:
        deadline = time.monotonic() + 30  # the first pass runs at start, then publishes
        while service.advisories.published < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        report: AdvisoryReport | None = service.advisories.latest
        assert report is not None  # the first pass runs at start
        assert service.advisories.published == 6  # 4 advisories, 2 topics cleared
        # nothing changed: the next pass publishes nothing
        service.advisories.run_once()
        assert service.advisories.published == 6
    finally:
        service.close()
    ops = Retained(broker.port)  # after the collector: the broker kept them
    try:
        raw = ops.wait_for(f"edgewatch/v1/{FLEET}/cam-noise-1/advisory")
        advisory = decode_collector("advisory", raw)
        assert advisory.action == "retrain" and advisory.device == "cam-noise-1"
        assert "noise" in [f.feature for f in advisory.features]
        blur = decode_collector("advisory",
                                ops.wait_for(f"edgewatch/v1/{FLEET}/cam-blur/advisory"))
        assert blur.action == "clean"
        time.sleep(0.5)
        assert f"edgewatch/v1/{FLEET}/cam-clean/advisory" not in ops.got  # 0 advisories
        assert len(ops.got) == 4
    finally:
        ops.close()


def test_advisory_puback_does_not_reach_the_command_relay() -> None:
    forwarded: list[int] = []

    class Client:
        protocol = 5

        def publish(self, *_a: Any, **_k: Any) -> Any:
            return type("Info", (), {"mid": 41})()

    thread = AdvisoryThread("sqlite:///unused", parse_collector_config({}).advisory, Client(),
                            "edgewatch/v1", ManualClock(NOW),
                            forward=lambda _c, _u, mid, _r, _p: forwarded.append(mid))
    thread._publish("edgewatch/v1/f/d/advisory", b"{}")
    thread.on_publish(None, None, 41, 0, None)
    thread.on_publish(None, None, 42, 16, None)
    assert forwarded == [42]
