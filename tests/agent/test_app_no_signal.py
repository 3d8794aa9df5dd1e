"""The no-signal fast path end to end: a replay of real footage that goes black for 6 s
gets its no-signal alert within 5 s of footage of the onset, long before the 60-s window
closes, and the alert resolves when the picture is back; the window still counts the black
frames."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgewatch.cli import main

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
FPS = 10.0
ONSET, BACK = 80, 140  # frame indices: black from 8.0 s to 14.0 s


def _footage(vtest: Path, folder: Path, n: int = 200) -> Path:
    folder.mkdir()
    cap = cv2.VideoCapture(str(vtest))
    for i in range(n):
        ok, frame = cap.read()
        assert ok
        if ONSET <= i < BACK:
            frame = np.zeros_like(frame)
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame)
    cap.release()
    return folder


def test_a_black_camera_alerts_within_seconds_not_at_the_window_end(
        assets: Path, vtest: Path, tmp_path: Path) -> None:
    frames = _footage(vtest, tmp_path / "frames")
    models = assets / "models"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[model]\npath = "{models / "ssdlite_mobilenet_v2_coco.onnx"}"\n'
        f'labels = "{models / "coco_labels.txt"}"\n'
        f'[source]\nfps = {FPS}\n[window]\nseconds = 60.0\n'
        '[reference]\nmin_frames = 50\n[resources]\nenabled = false\n', encoding="utf-8")
    reference, out = tmp_path / "reference.json", tmp_path / "out.jsonl"
    assert main(["profile", "build", "--config", str(config), "--source", str(frames),
                 "--frames", f"0:{ONSET}", "--out", str(reference)]) == 0
    assert main(["replay", "--config", str(config), "--source", str(frames),
                 "--reference", str(reference), "--out", str(out),
                 "--start", str(START)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = [line.get("type", "summary") for line in lines]
    signal = [(i, line) for i, line in enumerate(lines)
              if line.get("type") == "alert" and line.get("rule") == "no-signal"]
    assert [line["state"] for _, line in signal] == ["firing", "resolved"]
    (fired_at, fired), (_, resolved) = signal
    onset = START + ONSET / FPS
    assert fired["subject"] == "black"
    assert 0.0 < fired["window"]["end"] - onset <= 5.0  # known within 5 s of footage
    assert fired["window"]["start"] == onset  # since the first black frame
    assert resolved["window"]["end"] >= START + BACK / FPS
    assert "summary" not in kinds[:fired_at]  # before the (only) window closed
    summary = lines[kinds.index("summary")]
    assert summary["quality"]["black"] > 0  # the window still counts them
