"""Broken inputs for ``profile build`` and ``replay``: a video cut short, a model whose
outputs are all NaN, a model that fails on every frame, and the agent configuration (TOML)
that runs such a model on 64x64 frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper

from support.onnx_models import constant_model


def cut_short_video(vtest: Path, path: Path, frames: int = 28, keep: int = 3) -> Path:
    """The first ``frames`` frames of vtest written as MJPG; every frame from ``keep`` on has
    its JPEG data overwritten with garbage (the container stays readable, so the source
    delivers them as decode failures)."""
    cap = cv2.VideoCapture(str(vtest))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (768, 576))
    for _ in range(frames):
        ok, image = cap.read()
        assert ok
        writer.write(image)
    writer.release()
    cap.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8
              and data[i + 2:i + 3] == b"\xff"]  # JPEG start-of-image markers
    rng = np.random.default_rng(0)
    for s in starts[keep:keep + frames]:
        data[s:s + 600] = rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def nan_model(path: Path) -> Path:
    """A classifier-shaped model ([1, 3, 64, 64] float in, logits [1, 5] out) whose logits
    are all NaN."""
    return constant_model(path, np.full((1, 5), np.nan, np.float32))


def failing_model(path: Path) -> Path:
    """A model ([1, 3, 64, 64] float in) that onnxruntime fails to run on every frame: it
    reshapes its input to a shape the input's 12288 values cannot fill."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 7])
    graph = helper.make_graph([helper.make_node("Reshape", ["images", "shape"], ["logits"])],
                              "failing", [x], [y], initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def classifier_toml(path: Path, model: Path, extra: str = "") -> Path:
    """An agent configuration running ``model`` with the classification adapter on 64x64
    float NCHW frames."""
    path.write_text(
        f'[model]\npath = "{model}"\nadapter = "classification"\n'
        '[model.preprocess]\nwidth = 64\nheight = 64\nlayout = "NCHW"\ndtype = "float32"\n'
        '[window]\nseconds = 10.0\n[resources]\nenabled = false\n' + extra)
    return path
