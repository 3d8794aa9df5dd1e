"""Alerts grouped into incidents: one degradation of real footage notifies people at most
twice (drift + quality), the drift incident carries the drifted features and their effects,
and the no-signal fast path fires at once and gathers the later window alert of its cause.

What counts as a notification is what the collector's router sends to people: the alert
messages go through the wire codec and a real ``AlertRouter`` to a real webhook receiver.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from edgewatch.agent.alerts.engine import AlertEngine
from edgewatch.agent.alerts.state import AlertStore
from edgewatch.agent.app import Agent
from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import Frame, SignalChange
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.agent.window.summary import WindowSummary
from edgewatch.collector.routing import AlertRouter
from edgewatch.config.agent import AlertsConfig, parse_config
from edgewatch.contracts import Alert, codec
from support.paths import ssd_config_dict
from support.webhook import WebhookReceiver

FPS = 10.0
T0 = 1767225600.0  # 2026-01-01 00:00:00 UTC


class FoggedSource:
    """vtest frames 200-554 at 10 fps, fogged from frame 300 to 449 (30-45 s)."""

    live = False
    description = "vtest (fogged middle)"

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.images = frames

    def frames(self, stop: Any) -> Iterator[Frame]:
        for i in range(200, 555):
            image = self.images[i]
            if 300 <= i < 450:
                image = (image * 0.4 + 200 * 0.6).astype(np.uint8)
            yield Frame(i, i / FPS, image)


@pytest.fixture(scope="module")
def fog_summaries(assets: Path, vtest_all_frames: list[np.ndarray], ssd_engine: InferenceEngine,
                  ssd_reference: ReferenceProfile) -> list[dict[str, Any]]:
    """The window summaries (5 s) of a replay that fogs over for 15 s and clears again."""
    cfg = parse_config(ssd_config_dict(assets, window={"seconds": 5.0},
                                       features={"max_fps": 0.0}))
    out: list[dict[str, Any]] = []

    def sink(summary: WindowSummary) -> None:
        out.append(summary.to_dict())

    Agent(cfg, ssd_engine, ssd_reference, sink, live=False, lossless=True).run(
        FoggedSource(vtest_all_frames))
    assert sum(1 for s in out if (s.get("drift") or {}).get("severity") == "drift") >= 2
    return out


class Fleet:
    """One device's alert engine (default rules unless given) whose messages go through the
    codec (as the collector decodes them) and a real router to a real webhook."""

    def __init__(self, path: Path, hook: WebhookReceiver,
                 cfg: AlertsConfig | None = None) -> None:
        self.messages: list[Alert] = []
        self.router = AlertRouter(webhook_url=hook.url)
        self.hook = hook
        self.path, self.cfg = path, cfg or AlertsConfig()
        self.engine = self.make()

    def make(self) -> AlertEngine:
        return AlertEngine(self.cfg, AlertStore(self.path), self.emit, model_sha256="ab" * 32)

    def emit(self, alert: Alert) -> None:
        alert = msgspec.structs.replace(alert, device="cam-1", boot_id="b1",
                                        seq=len(self.messages) + 1)
        decoded = codec.decode("alert", codec.encode(alert))
        assert decoded == alert
        self.messages.append(decoded)
        self.router.route("f1", decoded)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def test_a_fogged_camera_notifies_at_most_twice(fog_summaries: list[dict[str, Any]],
                                                tmp_path: Path, hook: WebhookReceiver) -> None:
    fleet = Fleet(tmp_path / "alerts.db", hook)
    degraded = [s for s in fog_summaries if s["window"]["end"] <= 45.0]
    for s in degraded:
        fleet.engine.evaluate(s)
    firing = [m for m in fleet.messages if m.state == "firing"]
    assert len(firing) >= 3  # drift, quality and more fired ...
    texts = hook.texts()
    assert 1 <= len(texts) <= 2, texts  # ... but people heard of at most two incidents
    assert all(t.startswith("[FIRING] critical cam-1: ") for t in texts)
    leads = {m.id: m for m in fleet.messages if not m.incident}
    assert {m.group for m in leads.values()} <= {"drift", "quality"}
    for m in fleet.messages:  # every other alert is stored, as a member of one of them
        assert not m.incident or (m.incident in leads and leads[m.incident].group == m.group)
    assert fleet.router.grouped == len(fleet.messages) - len(texts)

    # clean footage again: each incident resolves once, with one more notification each
    for s in fog_summaries[len(degraded):]:
        fleet.engine.evaluate(s)
    texts = hook.texts()
    assert len(texts) <= 4 and sum(t.startswith("[RESOLVED]") for t in texts) == len(leads)
    assert fleet.engine.active == {}
    # an incident resolves only when all of its alerts have: its lead's resolution is last
    for lead in leads.values():
        last = {m.id: i for i, m in enumerate(fleet.messages)}
        assert fleet.messages[last[lead.id]].state == "resolved"
        members = {m.id for m in fleet.messages if m.incident == lead.id}
        assert all(last[m] < last[lead.id] for m in members)


def test_the_drift_incident_lists_the_drifted_features_and_effects(
        fog_summaries: list[dict[str, Any]], tmp_path: Path, hook: WebhookReceiver) -> None:
    fleet = Fleet(tmp_path / "alerts.db", hook)
    for s in fog_summaries:
        fleet.engine.evaluate(s)
        if any(m.rule == "drift" for m in fleet.messages):
            fired_on = s
            break
    [drift] = [m for m in fleet.messages if m.rule == "drift"]
    assert drift.state == "firing" and not drift.incident and drift.group == "drift"
    features = fired_on["drift"]["features"]
    drifted = {name for name, f in features.items() if f.get("drifted")}
    flagged = {name for name, f in features.items() if f.get("status") in ("warning", "drift")}
    assert len(drifted) >= 3
    assert {e.feature for e in drift.evidence} == flagged
    for e in drift.evidence:
        assert e.status == features[e.feature]["status"]
        assert e.drifted == bool(features[e.feature].get("drifted"))
        assert e.effect == pytest.approx(features[e.feature]["effect"], abs=1e-3)
    assert [e.drifted for e in drift.evidence] == sorted(
        (e.drifted for e in drift.evidence), reverse=True)  # confirmed drift first
    # and people read them: the webhook text names every drifted feature with its effect
    [text] = [t for t in hook.texts() if "drift.severity" in t]
    for e in drift.evidence:
        if e.drifted:
            assert f"{e.feature} {e.effect:.3g} (drift)" in text


# --------------------------------------------------------------------------- no signal


def quality_window(t: float, black: int, monitored: int = 50) -> dict[str, Any]:
    """A window summary shaped like the monitor's, ``black`` of its frames black."""
    return {"window": {"start": t, "end": t + 5.0, "windows": 1},
            "frames": {"seen": monitored, "monitored": monitored},
            "quality": {"black": black} if black else {},
            "drift": {"severity": "ok", "score": 0.0, "reasons": [], "features": {}},
            "anomaly": {"rate": 0.0}}


def test_no_signal_fires_at_once_and_the_quality_alert_joins_its_incident(
        tmp_path: Path, hook: WebhookReceiver) -> None:
    fleet = Fleet(tmp_path / "alerts.db", hook)
    fleet.engine.evaluate(quality_window(T0, 0))
    fleet.engine.signal(SignalChange(lost=True, fault="black", since=T0 + 5.0, at=T0 + 8.0))
    [lost] = fleet.messages
    assert (lost.rule, lost.subject, lost.state, lost.severity) == (
        "no-signal", "black", "firing", "critical")
    assert lost.metric == "signal" and lost.group == "quality" and not lost.incident
    assert (lost.window.start, lost.window.end, lost.since) == (T0 + 5.0, T0 + 8.0, T0 + 5.0)
    assert "no signal: black frames since 00:00:05 UTC (3.0 s)" in lost.message
    assert len(hook.texts()) == 1

    # the state survives a restart; the window rule then fires for the same cause
    fleet.engine.store.close()
    fleet.engine = fleet.make()
    fleet.engine.evaluate(quality_window(T0 + 5.0, 50))
    [quality] = [m for m in fleet.messages if m.rule == "quality"]
    assert quality.subject == "black" and quality.incident == lost.id
    assert len(hook.texts()) == 1  # joined the incident: nobody notified again

    # the picture is back: the incident stays open while its quality alert is active ...
    fleet.engine.signal(SignalChange(lost=False, fault="black", since=T0 + 5.0, at=T0 + 11.0))
    assert [m.id for m in fleet.engine.active.values()] == [lost.id, quality.id]
    assert len(hook.texts()) == 1
    # ... and resolves, with one notification, once that one has resolved too
    fleet.engine.evaluate(quality_window(T0 + 10.0, 0))
    assert fleet.engine.active == {}
    assert [(m.rule, m.state) for m in fleet.messages[-2:]] == [
        ("quality", "resolved"), ("no-signal", "resolved")]
    texts = hook.texts()
    assert len(texts) == 2 and texts[1].startswith("[RESOLVED] critical cam-1: no-signal")


def test_the_no_signal_rule_is_a_rule_operators_can_act_on(tmp_path: Path,
                                                           hook: WebhookReceiver) -> None:
    fleet = Fleet(tmp_path / "alerts.db", hook)
    router = CommandRouter()
    fleet.engine.register(router)
    fleet.engine.signal(SignalChange(lost=True, fault="frozen", since=T0, at=T0 + 3.0))
    assert router("ack", b'{"alert": "no-signal/frozen"}').ok
    assert fleet.messages[-1].state == "acknowledged"
    listed = router("list", b"{}")
    assert listed.ok and listed.rules is not None
    assert {r.name: r.incident for r in listed.rules}["no-signal"] == "quality"
    assert router("disable", b'{"rule": "no-signal"}').ok
    assert fleet.messages[-1].state == "resolved" and fleet.engine.active == {}
    fleet.engine.signal(SignalChange(lost=True, fault="frozen", since=T0, at=T0 + 20.0))
    assert len(fleet.messages) == 3  # disabled: nothing fires
