"""``edgewatch run`` stops cleanly: the last windows are acknowledged by the broker before the
process exits, so the next start does not send them again (flagged historical)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edgewatch.cli import main
from support.broker import MosquittoBroker
from support.footage import image_folder


def _config(tmp_path: Path, assets: Path, images: Path, port: int, wait: float) -> Path:
    models = assets / "models"
    text = f"""
[device]
id = "cam-run"
[model]
path = "{models / 'ssdlite_mobilenet_v2_coco.onnx'}"
labels = "{models / 'coco_labels.txt'}"
[source]
uri = "{images}"
fps = 10.0
[window]
seconds = 1.0
[drift]
min_frames = 1
[reference]
path = "{tmp_path / 'reference.json'}"
[alerts]
state_path = "{tmp_path / 'alerts.db'}"
[outbox]
path = "{tmp_path / 'outbox.db'}"
[resources]
enabled = false
[mqtt]
enabled = true
port = {port}
shutdown_wait_s = {wait}
"""
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _pending(outbox: Path) -> int:
    with sqlite3.connect(outbox) as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


def test_run_waits_for_the_last_acknowledgements(broker: MosquittoBroker, assets: Path,
                                                 vtest: Path, tmp_path: Path) -> None:
    images = image_folder(vtest, tmp_path / "frames", 30)
    config = _config(tmp_path, assets, images, broker.port, wait=5.0)
    assert main(["profile", "build", "--config", str(config), "--source", str(images),
                 "--out", str(tmp_path / "reference.json")]) == 0
    assert main(["run", "--config", str(config)]) == 0
    assert _pending(tmp_path / "outbox.db") == 0  # nothing left to send again


def test_run_does_not_wait_for_a_broker_that_is_gone(assets: Path, vtest: Path,
                                                     tmp_path: Path) -> None:
    import time

    from support.broker import free_port

    images = image_folder(vtest, tmp_path / "frames", 30)
    config = _config(tmp_path, assets, images, free_port(), wait=30.0)
    assert main(["profile", "build", "--config", str(config), "--source", str(images),
                 "--out", str(tmp_path / "reference.json")]) == 0
    t0 = time.monotonic()
    assert main(["run", "--config", str(config)]) == 0
    assert time.monotonic() - t0 < 25.0  # did not sit out the 30-s wait
    assert _pending(tmp_path / "outbox.db") > 0  # kept for the next start
