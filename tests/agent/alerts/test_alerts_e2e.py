"""Alerts end to end: fogged footage fires a drift alert that operators snooze and
acknowledge over MQTT, and that resolves when clean footage returns."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgewatch.agent.app import Agent
from edgewatch.agent.delivery.assembly import Delivery, make_alerting
from edgewatch.agent.delivery.sinks import Tee
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import Frame
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import parse_config
from support.broker import MosquittoBroker
from support.paths import ssd_config_dict
from support.subscriber import Collector

FPS = 10.0


class PausingSource:
    """vtest frames 200-554, fogged from 300 to 449, pausing after chosen frames."""

    live = False
    description = "vtest (fogged middle)"

    def __init__(self, frames: list[np.ndarray], pauses: dict[int, threading.Event]) -> None:
        self.images = frames
        self.pauses = pauses
        self.reached = {i: threading.Event() for i in pauses}

    def image(self, i: int) -> np.ndarray:
        image = self.images[i]
        if 300 <= i < 450:
            image = (image * 0.4 + 200 * 0.6).astype(np.uint8)
        return image

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for i in range(200, 555):  # the last window (55-55.5 s) is too short to judge
            if i in self.pauses:
                self.reached[i].set()
                assert self.pauses[i].wait(60), f"test did not release frame {i}"
            yield Frame(i, i / FPS, self.image(i))


def command(collector: Collector, name: str, **args: Any) -> dict[str, Any]:
    cid = f"{name}-{len(collector.of('cmd_result'))}"
    collector.client.publish(f"edgewatch/v1/f1/cam-1/cmd/{name}",
                             json.dumps({"id": cid, **args}), qos=1)
    for _ in range(200):
        found = [r for r in collector.of("cmd_result") if r.get("id") == cid]
        if found:
            return found[0]
        threading.Event().wait(0.05)
    raise AssertionError(f"no answer to {name}")


def test_fog_alert_snooze_ack_resolve(broker: MosquittoBroker, assets: Path, tmp_path: Path,
                                      vtest_all_frames: list[np.ndarray],
                                      ssd_engine: InferenceEngine,
                                      ssd_reference: ReferenceProfile) -> None:
    cfg = parse_config(ssd_config_dict(
        assets, window={"seconds": 5.0}, device={"id": "cam-1", "fleet": "f1"},
        features={"max_fps": 0.0},  # 5-s windows: measure every frame
        mqtt={"enabled": True, "port": broker.port, "reconnect_min_s": 0.05},
        outbox={"path": str(tmp_path / "outbox.db")},
        alerts={"state_path": str(tmp_path / "alerts.db"), "renotify_s": 10.0,
                "rules": [{"name": "drift", "metric": "drift.severity", "op": ">=",
                           "threshold": 2.0, "severity": "critical", "for_windows": 1,
                           "resolve_windows": 2}]}))
    collector = Collector(broker.port)
    delivery = Delivery(cfg, ssd_reference, device="cam-1", model_name="ssdlite",
                        model_sha256=ssd_engine.model_sha256, config_path=None, publish=True)
    alerting = make_alerting(cfg, model_sha256=ssd_engine.model_sha256,
                             outbox=delivery.outbox, publisher=delivery.publisher, lines=None,
                             commands=delivery.commands)
    assert alerting is not None
    delivery.start()
    gates = {351: threading.Event(), 451: threading.Event()}
    source = PausingSource(vtest_all_frames, gates)
    agent = Agent(cfg, ssd_engine, ssd_reference, Tee(delivery.sink, alerting), live=False,
                  lossless=True)
    runner = threading.Thread(target=agent.run, args=(source,))
    runner.start()
    try:
        # The first fogged window (30-35 s) closed: the alert fires.
        assert source.reached[351].wait(60)
        [fired] = collector.wait_for("alert", 1)
        assert fired["state"] == "firing" and fired["rule"] == "drift"
        assert "drift.severity = 2 in the window" in fired["message"]
        assert "expected < 2" in fired["message"] and "drifted" in fired["message"]
        assert fired["window"] == {"start": 30.0, "end": 35.0}
        answer = command(collector, "snooze", alert=fired["id"], seconds=10)
        assert answer["ok"] and answer["snoozed_until"] == 45.0
        assert collector.wait_for("alert", 2)[1]["state"] == "snoozed"
        gates[351].set()
        # 35-40 s: still snoozed, no reminder; 40-45 s: the snooze is over, a reminder.
        assert source.reached[451].wait(60)
        alerts = collector.wait_for("alert", 3)
        assert alerts[2]["state"] == "firing" and alerts[2]["renotify"] is True
        assert alerts[2]["window"] == {"start": 40.0, "end": 45.0}
        answer = command(collector, "ack", alert=fired["id"])
        assert answer["ok"] and answer["state"] == "acknowledged"
        assert collector.wait_for("alert", 4)[3]["state"] == "acknowledged"
        gates[451].set()
        runner.join(120)
        # Clean footage from 45 s: two clear windows resolve it.
        alerts = collector.wait_for("alert", 5)
        assert alerts[4]["state"] == "resolved" and alerts[4]["window"]["end"] == 55.0
        assert {a["id"] for a in alerts} == {fired["id"]}
        assert [a["seq"] for a in alerts] == sorted(a["seq"] for a in alerts)
        bad = command(collector, "ack", alert=fired["id"])
        # a refusal: "ok" false is the contract's default, left out of the message
        assert not bad.get("ok", False) and "no active alert" in bad["error"]
    finally:
        for g in gates.values():
            g.set()
        runner.join(60)
        delivery.close()
        collector.close()
    assert len(collector.of("alert")) == 5  # nothing else fired
