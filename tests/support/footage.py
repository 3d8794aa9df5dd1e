"""Window summaries of real footage, made the honest way: ``edgewatch profile build`` on
vtest.avi's frames 0-399 with the real SSDLite model, then ``edgewatch replay`` of the second
half (frames 400-794), untouched or degraded with cv2, as a device would measure it. The
replay lines become the schema-2 summaries a device publishes, ready for a collector store.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import msgspec
import numpy as np

from edgewatch.cli import main
from edgewatch.contracts import Reference, Summary, SummaryV1, compact

START = 1767225600.0
"""Stream time of frame 0 (2026-01-01T00:00:00Z); the second half starts 40 s later."""
SECOND_HALF = 400

Transform = Callable[[np.ndarray, int], np.ndarray]
"""A degradation: (BGR frame, its index from 0) -> BGR frame."""


def agent_config(assets: Path, work: Path) -> Path:
    """The agent configuration of the SSDLite detector with 10 s windows."""
    cfg = work / "agent.toml"
    cfg.write_text(
        f'[model]\npath = "{assets}/models/ssdlite_mobilenet_v2_coco.onnx"\n'
        f'labels = "{assets}/models/coco_labels.txt"\n[window]\nseconds = 10.0\n'
        '[resources]\nenabled = false\n')
    return cfg


def build_reference(cfg: Path, vtest: Path, work: Path, device: str = "") -> Reference:
    """``profile build`` on frames 0-399; the profile as the device publishes it."""
    path = work / "reference.json"
    if not path.exists():
        assert main(["profile", "build", "--config", str(cfg), "--source", str(vtest),
                     "--frames", f"0:{SECOND_HALF}", "--out", str(path)]) == 0
    reference = msgspec.json.decode(path.read_bytes(), type=Reference)
    return msgspec.structs.replace(reference, device=device)


def degraded_frames(vtest: Path, out: Path, transform: Transform) -> Path:
    """The second half of vtest.avi, each frame transformed, as a folder of PNG files."""
    out.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(vtest))
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index >= SECOND_HALF:
                done = transform(frame, index - SECOND_HALF)
                cv2.imwrite(str(out / f"{index:05d}.png"), done,
                            [cv2.IMWRITE_PNG_COMPRESSION, 1])
            index += 1
    finally:
        cap.release()
    return out


def replay(cfg: Path, source: Path, reference: Path, out: Path, device: str,
           boot_id: str = "boot-1", frames: str | None = None,
           start: float = START + SECOND_HALF / 10.0) -> list[Summary]:
    """``edgewatch replay`` of ``source``; its summary lines as the device publishes them
    (schema 2, with device, boot id and seq), oldest first."""
    args = ["replay", "--config", str(cfg), "--source", str(source), "--reference",
            str(reference), "--out", str(out), "--start", str(start)]
    if frames is not None:
        args += ["--frames", frames]
    if source.is_dir():
        args += ["--fps", "10"]
    assert main(args) == 0
    summaries = []
    for line in out.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") != "summary":
            continue
        record.pop("type")
        wire = compact(msgspec.convert(record, SummaryV1))
        summaries.append(msgspec.structs.replace(wire, device=device, boot_id=boot_id,
                                                 seq=len(summaries) + 1))
    return summaries


def gaussian_noise(sigma: float, seed: int = 0) -> Transform:
    rng = np.random.default_rng(seed)

    def apply(frame: np.ndarray, _index: int) -> np.ndarray:
        noisy = frame.astype(np.float32) + rng.normal(0.0, sigma, frame.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)

    return apply


def darkened(gain: float) -> Transform:
    def apply(frame: np.ndarray, _index: int) -> np.ndarray:
        return cv2.convertScaleAbs(frame, alpha=gain, beta=0)

    return apply


def blurred(kernel: int) -> Transform:
    def apply(frame: np.ndarray, _index: int) -> np.ndarray:
        return cv2.GaussianBlur(frame, (kernel, kernel), 0)

    return apply


def black(frame: np.ndarray, _index: int) -> np.ndarray:
    return np.zeros_like(frame)


def image_folder(vtest: Path, folder: Path, frames: int) -> Path:
    """vtest's first ``frames`` frames as a folder of JPEG files (a recorded source)."""
    folder.mkdir(parents=True)
    cap = cv2.VideoCapture(str(vtest))
    try:
        for i in range(frames):
            ok, frame = cap.read()
            assert ok, f"vtest has fewer than {frames} frames"
            cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame)
    finally:
        cap.release()
    return folder
