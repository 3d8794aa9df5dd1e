"""Pushing a model to a device through a real broker (edgewatch.agent.update.receive and
edgewatch.collector.model_push): the real SSD model travels in chunks, is staged beside the
running model with a matching sha256 and handed over once; a broker outage and a SIGKILL of
the receiving process resume with the missing chunks only; a wrong sha256 is rejected."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from edgewatch.agent.commands import CommandError
from edgewatch.agent.update.incoming import format_ranges
from edgewatch.agent.update.receive import UpdateReceiver
from edgewatch.agent.update.staged import StagedUpdate
from edgewatch.collector.model_push import build_manifest, push_device
from edgewatch.config.collector import CollectorMqttConfig
from edgewatch.contracts import codec
from edgewatch.contracts.model_transfer import ModelChunk, ModelManifest
from support.broker import MosquittoBroker
from support.update_device import FLEET, UpdateDevice, staged_lines

SUPPORT = Path(__file__).resolve().parents[2] / "support"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ssd_model(assets: Path) -> Path:
    return assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"


def mqtt(broker: MosquittoBroker) -> CollectorMqttConfig:
    return CollectorMqttConfig(host=broker.host, port=broker.port, client_id="operator")


@pytest.fixture
def device(broker: MosquittoBroker, tmp_path: Path, ssd_model: Path) -> Iterator[UpdateDevice]:
    dev = UpdateDevice(broker.host, broker.port, tmp_path / "dev",
                       running_model=ssd_model).start()
    yield dev
    dev.close()


def test_push_stages_the_model_and_hands_it_over_once(broker: MosquittoBroker,
                                                      device: UpdateDevice, ssd_model: Path,
                                                      assets: Path, tmp_path: Path) -> None:
    labels = assets / "models" / "coco_labels.txt"
    manifest, paths = build_manifest(ssd_model, labels=labels)
    running = sha(device.running)
    report = push_device(mqtt(broker), None, FLEET, "cam-1", manifest, paths,
                         rate_kib_per_s=64 * 1024)
    assert report.state == "staged", report.text()
    assert report.sent == report.chunks == manifest.chunks(manifest.files[0]) + 1
    assert len(device.staged) == 1
    staged = device.staged[0]
    assert isinstance(staged, StagedUpdate) and not staged.signed
    assert staged.update_id == manifest.update
    assert staged.model_sha256 == sha(ssd_model) == sha(staged.model)
    assert staged.labels is not None and sha(staged.labels) == sha(labels)
    assert staged.model.parent == device.workdir / "updates" / manifest.update
    assert sha(device.running) == running
    # pushing the same files again: nothing sent, nothing handed over twice
    again = push_device(mqtt(broker), None, FLEET, "cam-1", manifest, paths)
    assert again.state == "staged" and again.sent == 0
    assert len(device.staged) == 1
    assert sorted(p.name for p in staged.directory.iterdir()) == [
        "handed", "labels.txt", "manifest.json", "model.onnx"]


def test_broker_outage_resumes_with_the_missing_chunks_only(broker: MosquittoBroker,
                                                            device: UpdateDevice,
                                                            ssd_model: Path) -> None:
    manifest, paths = build_manifest(ssd_model)
    total = manifest.chunks(manifest.files[0])

    def stop_broker(sent: int) -> None:
        if sent == total // 3:
            broker.stop()

    first = push_device(mqtt(broker), None, FLEET, "cam-1", manifest, paths,
                        rate_kib_per_s=64 * 1024, progress=stop_broker)
    assert first.state == "incomplete" and "disconnected" in first.message, first.text()
    assert not device.staged
    broker.start()
    assert device.publisher.connected.wait(15)
    here = device.receiver.chunks_written  # what reached the device before the outage
    assert 0 < here < total
    second = push_device(mqtt(broker), None, FLEET, "cam-1", manifest, paths,
                         rate_kib_per_s=64 * 1024)
    assert second.state == "staged", second.text()
    assert second.sent == total - here  # only what was missing
    assert len(device.staged) == 1 and sha(device.staged[0].model) == sha(ssd_model)


def test_a_wrong_sha256_is_rejected_with_a_reason(broker: MosquittoBroker,
                                                  device: UpdateDevice,
                                                  ssd_model: Path) -> None:
    manifest, paths = build_manifest(ssd_model)
    wrong = msgspec.structs.replace(manifest.files[0], sha256="0" * 64)
    bad = msgspec.structs.replace(manifest, update="u-bad", files=[wrong])
    running = sha(device.running)
    report = push_device(mqtt(broker), None, FLEET, "cam-1", bad, paths,
                         rate_kib_per_s=64 * 1024)
    assert report.state == "rejected", report.text()
    assert "sha256" in report.message and "model.onnx" in report.message
    assert not device.staged
    assert not (device.workdir / "updates" / "u-bad").exists()  # discarded
    assert sha(device.running) == running
    # the right manifest afterwards goes through
    assert push_device(mqtt(broker), None, FLEET, "cam-1", manifest, paths,
                       rate_kib_per_s=64 * 1024).state == "staged"


def test_an_update_over_max_model_mb_is_refused(broker: MosquittoBroker, tmp_path: Path,
                                                ssd_model: Path) -> None:
    dev = UpdateDevice(broker.host, broker.port, tmp_path / "small", max_mb=1.0).start()
    try:
        manifest, paths = build_manifest(ssd_model)
        report = push_device(mqtt(broker), None, FLEET, "cam-1", manifest, paths)
        assert report.state == "rejected" and "update.max_model_mb" in report.message
        assert report.sent == 0 and not list((tmp_path / "small" / "updates").iterdir())
    finally:
        dev.close()


def _start_child(workdir: Path, broker: MosquittoBroker) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, str(SUPPORT / "update_device.py"), str(workdir), broker.host,
         str(broker.port)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "READY", line
    return child


def test_sigkill_mid_transfer_resumes_and_leaves_the_running_model(
        broker: MosquittoBroker, tmp_path: Path, ssd_model: Path) -> None:
    workdir = tmp_path / "child"
    (workdir / "running").mkdir(parents=True)
    running = workdir / "running" / "model.onnx"
    shutil.copyfile(ssd_model, running)
    manifest, paths = build_manifest(ssd_model)
    total = manifest.chunks(manifest.files[0])
    child = _start_child(workdir, broker)
    try:
        def kill(sent: int) -> None:
            if sent == total // 2:
                time.sleep(0.3)  # let the device write some of them
                child.send_signal(signal.SIGKILL)
                child.wait(10)

        first = push_device(mqtt(broker), None, FLEET, "cam-1", manifest, paths,
                            rate_kib_per_s=64 * 1024, timeout_s=3.0, progress=kill)
        assert child.returncode == -signal.SIGKILL
        assert first.state == "incomplete", first.text()
        # the staging directory after the kill: consistent, beside the running model
        staging = workdir / "updates" / manifest.update
        names = {p.name for p in staging.iterdir()}
        assert "model.onnx" not in names and "manifest.json" in names
        assert names <= {"manifest.json", "model.onnx.part", "model.onnx.have"}
        have = (staging / "model.onnx.have").read_bytes() if "model.onnx.have" in names else b""
        kept = [i for i, b in enumerate(have) if b]
        assert 0 < len(kept) < total, format_ranges(kept)
        part = (staging / "model.onnx.part").read_bytes()
        source = ssd_model.read_bytes()
        size = manifest.chunk_bytes
        for i in kept:  # every chunk the map records is really there
            assert part[i * size:(i + 1) * size] == source[i * size:(i + 1) * size], i
        assert sha(running) == sha(ssd_model)
        assert not staged_lines(workdir)

        child = _start_child(workdir, broker)
        second = push_device(mqtt(broker), None, FLEET, "cam-1", manifest, paths,
                             rate_kib_per_s=64 * 1024)
        assert second.state == "staged", second.text()
        assert second.sent == total - len(kept)  # only what the device did not keep
        staged = staged_lines(workdir)
        assert len(staged) == 1 and staged[0]["sha256"] == sha(ssd_model)
        assert sha(Path(staged[0]["model"])) == sha(ssd_model)
        assert sha(running) == sha(ssd_model)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait(10)


def _chunks(manifest: ModelManifest, paths: dict[str, Path]) -> list[bytes]:
    out = []
    for f in manifest.files:
        data = paths[f.name].read_bytes()
        for i in range(manifest.chunks(f)):
            part = data[i * manifest.chunk_bytes:(i + 1) * manifest.chunk_bytes]
            out.append(codec.encode(ModelChunk(update=manifest.update, file=f.name, index=i,
                                               data=part, sha256=f.sha256)))
    return out


def test_signature_hook_and_disk_space(tmp_path: Path, assets: Path) -> None:
    """Without the network: a configured verifier must accept the model's signature (a
    refusal rejects the update), and an update that would not leave room is refused."""
    model = assets / "models" / "coco_labels.txt"  # small: the receiver does not care
    sig = tmp_path / "model.sig"
    sig.write_bytes(b"s" * 64)
    manifest, paths = build_manifest(model, signature=sig)
    seen: list[tuple[Path, bytes]] = []
    staged: list[StagedUpdate] = []

    def verifier(path: Path, signature: bytes) -> bool:
        seen.append((path, signature))
        return signature == b"s" * 64

    receiver = UpdateReceiver(tmp_path / "a", "cam-1", on_staged=staged.append,
                              max_bytes=2**20, verifier=verifier)
    first = receiver.push_command(manifest.to_args())
    assert first["update_state"] == "receiving" and first["received"] == 0
    topic = f"edgewatch/v1/f1/cam-1/update/{manifest.update}"
    for raw in _chunks(manifest, paths):
        receiver.chunk(topic, raw)
        receiver.chunk(topic, raw)  # a duplicate is ignored
    assert receiver.push_command(manifest.to_args())["update_state"] == "staged"
    assert len(staged) == 1 and staged[0].signed and seen[0][0] == staged[0].model

    sig.write_bytes(b"x" * 64)
    forged, forged_paths = build_manifest(model, signature=sig)
    other = UpdateReceiver(tmp_path / "b", "cam-1", on_staged=staged.append,
                           max_bytes=2**20, verifier=verifier)
    other.push_command(forged.to_args())
    for raw in _chunks(forged, forged_paths):
        other.chunk(f"edgewatch/v1/f1/cam-1/update/{forged.update}", raw)
    with pytest.raises(CommandError, match="signature does not verify"):
        other.push_command(forged.to_args())
    assert len(staged) == 1

    full = UpdateReceiver(tmp_path / "c", "cam-1", on_staged=staged.append,
                          max_bytes=2**40, reserve_bytes=2**60)
    with pytest.raises(CommandError, match="not enough disk space"):
        full.push_command(manifest.to_args())
