"""``edgewatch model push`` (edgewatch.collector.model_push): the manifest of real files, the
missing-chunk specs, and the CLI against a real broker, the real collector service and a
device of real agent parts: an offline device gets the manifest queued and delivered on its
birth, the next push sends the chunks and the model is staged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edgewatch.cli import main
from edgewatch.collector.model_push import build_manifest, parse_missing
from edgewatch.collector.service import CollectorService
from edgewatch.collector.store import open_store
from edgewatch.config.collector import load_collector_config
from edgewatch.contracts.model_transfer import ModelManifest
from support.broker import MosquittoBroker
from support.update_device import UpdateDevice
from support.waiting import wait_until


def test_manifest_of_real_files_round_trips_as_command_arguments(assets: Path) -> None:
    model = assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"
    labels = assets / "models" / "coco_labels.txt"
    manifest, paths = build_manifest(model, labels=labels, chunk_bytes=128 * 1024)
    assert manifest.update.startswith("u-")
    onnx = manifest.role("model")
    assert onnx is not None and onnx.bytes == model.stat().st_size
    assert onnx.sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert paths == {"model.onnx": model, "labels.txt": labels}
    assert ModelManifest.from_args(manifest.to_args()) == manifest
    # the same files give the same update id (a push again resumes it)
    assert build_manifest(model, labels=labels, chunk_bytes=128 * 1024)[0] == manifest
    assert build_manifest(model, chunk_bytes=128 * 1024)[0].update != manifest.update
    n = manifest.chunks(onnx)
    assert parse_missing(["model.onnx:0-2,5", "labels.txt:", "other:1"], manifest) == [
        ("model.onnx", 0), ("model.onnx", 1), ("model.onnx", 2), ("model.onnx", 5),
        ("labels.txt", 0)]
    assert len(parse_missing([f"model.onnx:0-{n + 10}"], manifest)) == n
    for bad in ({"update": "u-1", "chunk_bytes": 65536, "files": ["model:a.onnx:1"]},
                {"update": "u-1", "chunk_bytes": 65536, "files": ["labels:a.txt:1:" + "0" * 64]},
                {"update": "../x", "chunk_bytes": 65536, "files": ["model:a:1:" + "0" * 64]},
                {"update": "u-1", "chunk_bytes": 65536, "files": ["model:../a:1:" + "0" * 64]}):
        with pytest.raises(ValueError):
            ModelManifest.from_args(bad)


def test_cli_push_to_an_offline_device_is_queued_then_completes(
        broker: MosquittoBroker, tmp_path: Path, assets: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    model = assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"
    config = tmp_path / "collector.toml"
    config.write_text(f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                      f'client_id = "collector-push"\n[store]\nurl = '
                      f'"sqlite:///{tmp_path / "c.db"}"\n[http]\nport = 0\n')
    argv = ["model", "push", "--device", "cam-1", "--fleet", "f1", "--model", str(model),
            "--config", str(config), "--timeout", "3", "--json"]
    service = CollectorService(load_collector_config(config))
    service.start()
    device = None
    try:
        assert service.ingestor.subscribed.wait(15)
        capsys.readouterr()
        assert main(argv) == 0
        [queued] = json.loads(capsys.readouterr().out)
        assert queued["state"] == "queued" and queued["sent"] == 0
        device = UpdateDevice(broker.host, broker.port, tmp_path / "dev").start()
        staging = tmp_path / "dev" / "updates" / queued["update"]
        # the collector delivered the queued manifest on the device's birth
        wait_until((staging / "manifest.json").exists, 15, "the queued manifest")
        with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
            wait_until(lambda: any(c.name == "model.push" and c.state == "answered"
                                   for c in store.commands("cam-1", None, 10)), 15,
                       "the answer to the queued model.push")
        assert main(argv) == 0
        [done] = json.loads(capsys.readouterr().out)
        assert done["state"] == "staged" and done["sent"] == done["chunks"]
        assert len(device.staged) == 1
        assert hashlib.sha256(device.staged[0].model.read_bytes()).hexdigest() == \
            hashlib.sha256(model.read_bytes()).hexdigest()
    finally:
        if device is not None:
            device.close()
        service.close()
