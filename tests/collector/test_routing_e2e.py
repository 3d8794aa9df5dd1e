"""The collector's alert routing wired end to end: broker, collector, Alertmanager."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest

from edgewatch.agent.commands import CommandRouter
from edgewatch.cli import main
from edgewatch.collector.service import CollectorService
from edgewatch.config.collector import load_collector_config
from edgewatch.errors import ConfigError
from support.alertmanager import AlertmanagerServer, alertmanager_binary, ours
from support.broker import MosquittoBroker
from support.devices import Device, StandInDevice
from support.waiting import wait_until


def test_collector_routes_new_alerts_once(broker: MosquittoBroker, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    if alertmanager_binary() is None:
        pytest.skip("no alertmanager")
    with AlertmanagerServer(tmp_path / "am") as am:
        toml = tmp_path / "collector.toml"
        toml.write_text(f'[mqtt]\nport = {broker.port}\nclient_id = "c-{uuid.uuid4().hex[:6]}"\n'
                        f'[store]\nurl = "sqlite:///{tmp_path / "fleet.db"}"\n[http]\nport = 0\n'
                        f'[alerting]\nalertmanager_url = "{am.url}"\n')
        service = CollectorService(load_collector_config(toml))
        service.start()
        wait_until(lambda: service.ingestor.stats.connected, 10)
        dev = Device(tmp_path / "alerts.db")
        firing = dev.window(91.0)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub", protocol=mqtt.MQTTv5)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        for _ in range(2):  # a duplicate delivery
            pub.publish("edgewatch/v1/f1/cam-1/alert", msgspec.json.encode(firing),
                        qos=1).wait_for_publish()
        wait_until(lambda: len(ours(am, firing.id)) == 1, 10)
        time.sleep(0.5)
        assert service.routing is not None
        assert service.routing.router.sent == {"alertmanager": 1}
        # CLI: alerts list
        assert main(["alerts", "list", "--config", str(toml)]) == 0
        out = capsys.readouterr().out
        assert firing.id in out and "1 alert (1 firing)" in out
        # CLI: alerts ack, device and fleet from the store
        router = CommandRouter()
        dev.engine.register(router)
        d = StandInDevice(broker, router)
        d.seq = 100  # one seq space per device: keep clear of the alert messages' seqs
        try:
            assert main(["alerts", "ack", firing.id, "--config", str(toml)]) == 0
            assert capsys.readouterr().out.strip() == "cam-1: ack ok"
            with pytest.raises(SystemExit) as refused:  # a usage error, never sent
                main(["alerts", "snooze", firing.id, "-5", "--config", str(toml)])
            assert refused.value.code == 2
            assert "expected a finite number above 0" in capsys.readouterr().err
            assert main(["alerts", "set-threshold", "temperature", "90",
                         "--resolve-threshold", "82", "--device", "cam-1",
                         "--config", str(toml)]) == 0
            assert dev.engine.rule("temperature").threshold == 90.0
            assert capsys.readouterr().out.strip() == "cam-1: set-threshold ok"
            assert main(["alerts", "rules", "--device", "cam-1", "--config", str(toml)]) == 0
            out = json.loads(capsys.readouterr().out)
            assert out["alerts"][0]["state"] == "acknowledged"
            # the bad snooze was refused by the command line: it never left
            assert [c[0] for c in d.commands] == ["ack", "set-threshold", "list"]
        finally:
            d.close()
        # nobody listens now: kept for the device's return (docs/mqtt.md), exit 0
        assert main(["alerts", "disable", "temperature", "--device", "cam-1", "--fleet", "f1",
                     "--timeout", "1", "--config", str(toml)]) == 0
        assert capsys.readouterr().out.startswith("queued: cam-1 ")
        assert main(["alerts", "rules", "--device", "cam-1", "--fleet", "f1",
                     "--timeout", "1", "--config", str(toml)]) == 1  # a read: not queued
        assert "not delivered" in capsys.readouterr().err
        resolved = dev.window(70.0)
        pub.publish("edgewatch/v1/f1/cam-1/alert", msgspec.json.encode(resolved),
                    qos=1).wait_for_publish()
        wait_until(lambda: ours(am, firing.id) == [], 5)
        pub.disconnect()
        pub.loop_stop()
        service.close()


def test_bad_alerting_url(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[alerting]\nwebhook_url = "hooks.slack.com/x"\n')
    with pytest.raises(ConfigError, match=r"alerting\.webhook_url"):
        load_collector_config(toml)
