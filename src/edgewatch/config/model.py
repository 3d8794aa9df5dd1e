"""The ``[model]`` section of the agent's configuration: the ONNX model, how a frame becomes
its input tensor (``[model.preprocess]``) and how its outputs are read
(``[model.postprocess]``).

Part of the agent's configuration tree (:class:`edgewatch.config.agent.AgentConfig`), which
holds it as ``model``; its keys are documented in ``docs/configuration.md`` like the rest.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from edgewatch.config.typed import section, setting

Adapter = Literal["ssd", "yolo", "classification", "raw"]


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    width: int = setting(0, "Model input width in pixels; 0 keeps the frame's width.", minimum=0)
    height: int = setting(0, "Model input height in pixels; 0 keeps the frame's height.", minimum=0)
    resize: Literal["stretch", "letterbox"] = setting(
        "stretch", "How frames are fitted to width x height: 'stretch' or 'letterbox' "
        "(aspect kept, padded with grey 114)."
    )
    layout: Literal["NHWC", "NCHW"] = setting("NHWC", "Tensor layout the model expects.")
    color: Literal["RGB", "BGR"] = setting("RGB", "Channel order the model expects.")
    dtype: Literal["uint8", "float32", "float16"] = setting("uint8", "Input tensor type.")
    scale: float = setting(
        1.0, "Pixel values are first multiplied by this (0.00392157 for 1/255).", minimum=0.0
    )
    mean: list[float] = setting(
        [0.0, 0.0, 0.0], "Then this per-channel mean (in model channel order) is subtracted."
    )
    std: list[float] = setting(
        [1.0, 1.0, 1.0], "Then the result is divided by this per-channel standard deviation."
    )

    def validate(self) -> None:
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need exactly 3 values (one per channel)")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        if (self.width == 0) != (self.height == 0):
            raise ValueError("width and height must both be set or both be 0")
        if self.resize == "letterbox" and self.width == 0:
            raise ValueError("resize = 'letterbox' needs width and height")


@dataclasses.dataclass(frozen=True)
class PostprocessConfig:
    score_threshold: float = setting(
        0.4, "Operating threshold: detections at or above it count as detections.",
        minimum=0.0, maximum=1.0,
    )
    near_band: float = setting(
        0.1, "Scores within this distance below or above the threshold count as 'near threshold'.",
        minimum=0.0, maximum=1.0,
    )
    iou_threshold: float = setting(
        0.45, "IoU above which the yolo adapter's NMS suppresses a box.", minimum=0.0, maximum=1.0
    )
    max_detections: int = setting(300, "Upper bound on detections kept per frame.", minimum=1)
    softmax: Literal["auto", "always", "never"] = setting(
        "auto", "Classification: apply softmax to outputs ('auto': only when they are not "
        "already probabilities)."
    )


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    path: str = setting("", "Path to the ONNX model file (relative paths: to the config file).")
    adapter: Adapter = setting(
        "ssd", "How outputs are read: 'ssd' (TF Object Detection API), 'yolo' "
        "(Ultralytics v5/v8/v11), 'classification', or 'raw' (tensor statistics only)."
    )
    labels: str = setting("", "Optional class-name file, one per line (line k = class id k).")
    labels_offset: int | None = setting(
        None, "Class id of the first line of the labels file; unset: by adapter, 1 for 'ssd' "
        "(COCO ids start at 1), 0 for 'yolo', 'classification' and 'raw'. Start-up and "
        "check-config warn when the labels do not fit the model's classes.", minimum=0,
    )
    input_name: str = setting("", "Model input to feed; empty means the first input.")
    intra_op_threads: int = setting(
        0, "onnxruntime intra-op threads; 0 lets onnxruntime choose (one per core).", minimum=0
    )
    allow_spinning: bool = setting(
        True, "Let onnxruntime's idle threads spin (lowest latency when the cores are free).",
    )
    providers: list[str] = setting(
        ["CPUExecutionProvider"], "onnxruntime execution providers, in order of preference."
    )
    preprocess: PreprocessConfig = section(PreprocessConfig, "Turning a frame into a tensor.")
    postprocess: PostprocessConfig = section(PostprocessConfig, "Reading detections and scores.")

    @property
    def resolved_labels_offset(self) -> int:
        """``labels_offset``, or the adapter's default when it is unset."""
        if self.labels_offset is not None:
            return self.labels_offset
        return 1 if self.adapter == "ssd" else 0
