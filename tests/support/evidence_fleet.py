"""Evidence retrieval tests: a device (the real agent from ``build_agent``, publishing to a
real broker, with an evidence store), the collector's configuration, frames written to a
device's evidence store from real footage, and checks of a pulled dataset folder."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgewatch.agent.app import offline_config
from edgewatch.agent.evidence.store import EvidenceStore
from edgewatch.collector.service import CollectorService
from edgewatch.config.agent import AgentConfig
from edgewatch.config.collector import load_collector_config
from support.broker import MosquittoBroker

FLEET = "f1"




def device_config(base: AgentConfig, workdir: Path, broker: MosquittoBroker, device: str,
                  **evidence: Any) -> AgentConfig:
    """``base`` as device ``device`` of fleet f1: evidence on (no near-threshold or baseline
    frames), publishing to ``broker``, its outbox in ``workdir``, 10 s windows."""
    workdir.mkdir(parents=True, exist_ok=True)
    ev = dataclasses.replace(base.evidence, enabled=True, path=str(workdir / "evidence"),
                             near_threshold_per_hour=0.0, baseline_per_hour=0.0,
                             min_free_mb=0.0, **evidence)
    mqtt = dataclasses.replace(base.mqtt, enabled=True, host=broker.host, port=broker.port,
                               reconnect_min_s=0.05, reconnect_max_s=0.5)
    return offline_config(dataclasses.replace(
        base, evidence=ev, mqtt=mqtt,
        outbox=dataclasses.replace(base.outbox, path=str(workdir / "outbox.db")),
        device=dataclasses.replace(base.device, id=device, fleet=FLEET),
        window=dataclasses.replace(base.window, seconds=10.0)))


def collector_config(path: Path, broker: MosquittoBroker, store_url: str,
                     evidence_dir: Path, extra: str = "") -> Path:
    path.write_text(f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                    f'client_id = "collector-{path.parent.name[:20]}"\n'
                    f'[store]\nurl = "{store_url}"\n[http]\nport = 0\n'
                    f'[advisory]\ninterval_s = 0.0\nmin_windows = 3\nmin_span_s = 25.0\n'
                    f'[evidence]\ndir = "{evidence_dir}"\nwait_s = 10.0\n{extra}')
    return path


def vtest_frames(vtest: Path, first: int, last: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) of vtest.avi's frames first..last-1, decoded one at a time."""
    cap = cv2.VideoCapture(str(vtest))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, first)
        for i in range(first, last):
            ok, frame = cap.read()
            if not ok:
                return
            yield i, frame
    finally:
        cap.release()


def stock_store(path: Path, vtest: Path, frames: int, alert_id: str = "a-1",
                quality: int = 92) -> list[str]:
    """Write ``frames`` vtest frames (every 5th from 100) to an evidence store as frames of a
    drift alert, each with a detection pre-label; their ids."""
    store = EvidenceStore(path, 1 << 30)
    ids = []
    now = time.time()
    try:
        for n, (i, image) in enumerate(vtest_frames(vtest, 100, 100 + 5 * frames)):
            if n % 5:
                continue
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert ok
            frame_id = f"{int((now + n) * 1000):013d}-{i:07d}-{n:04x}"
            store.write({"id": frame_id, "captured": now + n, "time": i / 10.0,
                         "frame_index": i, "window": {"start": 10.0, "end": 20.0},
                         "device": "cam", "triggers": [
                             {"kind": "alert", "phase": "pre", "alert_id": alert_id,
                              "rule": "drift", "metric": "drift.severity"}],
                         "features": {"brightness": 90.0},
                         "prelabels": {"kind": "detections", "score_threshold": 0.4,
                                       "boxes": [[0.1, 0.2, 0.3, 0.6]], "class_ids": [1],
                                       "names": ["person"], "scores": [0.9]}},
                        jpeg.tobytes())
            ids.append(frame_id)
    finally:
        store.close()
    return ids


def device_files(evidence_path: Path) -> dict[str, str]:
    """File name -> sha256 of every image and sidecar in a device's evidence store."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (evidence_path / "frames").glob("*/*") if p.suffix in (".jpg", ".json")}


YOLO_LINE = re.compile(r"^(\d+)( [0-9.eE+-]+){4}$")


def check_dataset(out: Path, ids: list[str]) -> dict[str, Any]:
    """The dataset folder a pull wrote holds every frame of ``ids``: an image cv2 decodes, a
    sidecar, YOLO labels (5 numbers, coordinates in [0, 1], classes of classes.txt), a
    data.yaml and an index.html that shows every image. Returns counts."""
    classes = (out / "classes.txt").read_text().splitlines()
    yaml = (out / "data.yaml").read_text()
    assert f"nc: {len(classes)}" in yaml and "train: images" in yaml
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    boxes = 0
    for frame_id in ids:
        image = cv2.imread(str(out / "images" / f"{frame_id}.jpg"))
        assert image is not None and image.ndim == 3, frame_id
        sidecar = json.loads((out / "sidecars" / f"{frame_id}.json").read_text())
        assert sidecar["id"] == frame_id and sidecar["schema"] == "edgewatch.evidence/1"
        assert f'src="images/{frame_id}.jpg"' in page
        lines = (out / "labels" / f"{frame_id}.txt").read_text().splitlines()
        assert len(lines) == len(sidecar["prelabels"]["boxes"])
        for line in lines:
            assert YOLO_LINE.match(line), line
            cls, *coords = line.split()
            assert 0 <= int(cls) < len(classes)
            assert all(0.0 <= float(v) <= 1.0 for v in coords), line
            boxes += 1
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(ids)
    return {"images": len(ids), "boxes": boxes, "classes": classes}


def dataset_files(out: Path) -> dict[str, str]:
    """File name -> sha256 of the images and sidecars of a pulled dataset."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("images", "sidecars") for p in (out / sub).iterdir()}


@contextlib.contextmanager
def running_collector(workdir: Path, broker: MosquittoBroker,
                      extra: str = "") -> Iterator[tuple[CollectorService, Path]]:
    """The real collector service on ``broker`` with a SQLite store in ``workdir``, its
    subscriptions confirmed; (the service, its configuration file). Closed afterwards."""
    config = collector_config(workdir / "collector.toml", broker,
                              f"sqlite:///{workdir / 'collector.db'}",
                              workdir / "collector-evidence", extra)
    service = CollectorService(load_collector_config(config))
    service.start()
    try:
        assert service.ingestor.subscribed.wait(15), "the collector did not subscribe"
        yield service, config
    finally:
        service.close()
