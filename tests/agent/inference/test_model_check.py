"""Checking a loaded model against the configuration (edgewatch.agent.inference.model_check):
at start-up (``InferenceEngine``) and in ``check-config``, on real onnxruntime sessions of
small generated models and of the real SSDLite and CenterFace models."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from edgewatch.agent.app import make_measurer
from edgewatch.agent.inference.adapters import TensorSpec
from edgewatch.agent.inference.engine import InferenceEngine, load_session
from edgewatch.agent.inference.model_check import (
    check_configured_model,
    label_warnings,
    model_classes,
)
from edgewatch.agent.records import Detections
from edgewatch.config.agent import parse_config
from edgewatch.config.model import ModelConfig
from edgewatch.errors import AdapterMismatch, ConfigError
from support.onnx_models import (
    constant_model,
    flattening_classifier_model,
    yolo_v5_output,
    yolo_v8_output,
)

NCHW_FLOAT = {"layout": "NCHW", "dtype": "float32"}


def model_config(path: Path | str, adapter: str = "classification",
                 preprocess: dict[str, Any] | None = None, **model: Any) -> ModelConfig:
    data = {"path": str(path), "adapter": adapter, "preprocess": preprocess or {}, **model}
    return parse_config({"model": data}).model


def check(cfg: ModelConfig) -> list[str]:
    """What check-config checks about the model: raises on errors, returns the warnings."""
    return check_configured_model(cfg, load_session(cfg))


def input_model(tmp_path: Path, shape: tuple[int | str, ...], dtype: str = "float32") -> Path:
    """A classifier-shaped model ([1, 4] scores) whose only interesting part is its input."""
    return constant_model(tmp_path / "m.onnx", np.zeros((1, 4)), input_shape=shape,
                          input_dtype=dtype)


def labels_file(path: Path, count: int, first: str = "c0") -> str:
    path.write_text("\n".join([first] + [f"c{i}" for i in range(1, count)]) + "\n")
    return str(path)


# -- the input: batch, layout, dtype, size ----------------------------------------------------

INPUTS = [
    # (id, model input shape, input dtype, model.preprocess, expected message)
    ("batch-10", (10, 3, 32, 32), "float32", {**NCHW_FLOAT, "width": 32, "height": 32},
     "model input 'images' [10, 3, 32, 32]: fixed batch size 10: edgewatch feeds one frame at "
     "a time; export the model with batch 1 or a dynamic batch"),
    ("nchw-at-nhwc", (1, 3, 224, 224), "float32", {"dtype": "float32"},
     "model input 'images' [1, 3, 224, 224] is NCHW: set model.preprocess.layout = \"NCHW\""),
    ("nchw-dynamic-size-at-nhwc", (1, 3, "h", "w"), "float32", {"dtype": "float32"},
     "model input 'images' [1, 3, 'h', 'w'] is NCHW: set model.preprocess.layout = \"NCHW\""),
    ("nhwc-at-nchw", (1, 224, 224, 3), "uint8", {"layout": "NCHW"},
     "model input 'images' [1, 224, 224, 3] is NHWC: set model.preprocess.layout = \"NHWC\""),
    ("dtype", (1, 3, 64, 64), "float32", {"layout": "NCHW", "width": 64, "height": 64},
     "model input 'images' [1, 3, 64, 64] tensor(float): model.preprocess.dtype is 'uint8': "
     "set model.preprocess.dtype = \"float32\""),
    ("fixed-size", (1, 3, 320, 320), "float32", NCHW_FLOAT,
     "model input 'images' [1, 3, 320, 320]: fixed height 320, but model.preprocess.height is "
     "0: set model.preprocess.height = 320 (and width = 320)"),
    ("fixed-height-only", (1, 3, 320, "w"), "float32", NCHW_FLOAT,
     "model input 'images' [1, 3, 320, 'w']: fixed height 320, but model.preprocess.height is "
     "0: set model.preprocess.height = 320 (and model.preprocess.width, which is set with it)"),
    ("fixed-width-wrong", (1, 320, 640, 3), "uint8", {"width": 320, "height": 320},
     "model input 'images' [1, 320, 640, 3]: fixed width 640, but model.preprocess.width is "
     "320: set model.preprocess.width = 640"),
]


@pytest.mark.parametrize(("shape", "dtype", "pre", "message"), [i[1:] for i in INPUTS],
                         ids=[i[0] for i in INPUTS])
def test_start_up_names_the_key_to_set(tmp_path: Path, shape: tuple[int | str, ...],
                                       dtype: str, pre: dict[str, Any], message: str) -> None:
    cfg = model_config(input_model(tmp_path, shape, dtype), preprocess=pre)
    with pytest.raises(AdapterMismatch) as start_up:
        InferenceEngine(cfg)
    assert str(start_up.value) == message
    with pytest.raises(AdapterMismatch) as checked:
        check(cfg)
    assert str(checked.value) == message


def test_following_the_messages_gives_a_model_that_runs(tmp_path: Path) -> None:
    path = input_model(tmp_path, (1, 3, 320, 320))
    cfg = model_config(path, preprocess={"dtype": "float32"})
    fixes: list[str] = []
    for _ in range(4):
        try:
            InferenceEngine(cfg)
            break
        except AdapterMismatch as exc:
            fixes.append(str(exc).rsplit(": set ", 1)[1])
        pre = {"dtype": "float32", "layout": "NCHW"} if len(fixes) == 1 else {
            "dtype": "float32", "layout": "NCHW", "width": 320, "height": 320}
        cfg = model_config(path, preprocess=pre)
    assert fixes == ['model.preprocess.layout = "NCHW"',
                     "model.preprocess.height = 320 (and width = 320)"]
    assert check(cfg) == []
    assert InferenceEngine(cfg).infer(np.zeros((240, 320, 3), np.uint8)).output is not None


@pytest.fixture(scope="module")
def centerface(assets: Path) -> Path:
    path = assets / "models" / "centerface.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.mark.parametrize("pre", [{}, {**NCHW_FLOAT, "width": 32, "height": 32}],
                         ids=["defaults", "nchw-32"])
def test_real_model_with_a_fixed_batch_of_10_is_refused_for_its_batch(
        centerface: Path, pre: dict[str, Any]) -> None:
    """CenterFace declares [10, 3, 32, 32]: the batch is the problem, whatever the set-up
    (not 'fixed height 32', and not an onnxruntime error on every frame)."""
    cfg = model_config(centerface, "raw", preprocess=pre)
    with pytest.raises(AdapterMismatch, match=r"^model input 'input.1' \[10, 3, 32, 32\]: "
                                              r"fixed batch size 10: edgewatch feeds one frame"):
        InferenceEngine(cfg)


# -- a test frame through the model (check-config) --------------------------------------------


def test_a_size_the_model_cannot_run_fails_check_config_naming_the_keys(tmp_path: Path) -> None:
    """The input dims are declared dynamic, but the graph only runs on 8x8 frames."""
    path = flattening_classifier_model(tmp_path / "flat.onnx", size=8)
    wrong = model_config(path, preprocess={**NCHW_FLOAT, "width": 16, "height": 16})
    with pytest.raises(AdapterMismatch) as info:
        check(wrong)
    message = str(info.value)
    assert message.startswith("model input 'images' [1, 3, 'height', 'width']: a 16x16 NCHW "
                              "float32 frame fails in onnxruntime (Reshape node: ")
    assert "Input shape:{1,3,16,16}, requested shape:{1,192}" in message
    assert message.endswith("set model.preprocess.width, height, layout and dtype to what "
                            "the model accepts")
    assert "\n" not in message and "reshape_helper" not in message
    assert check(model_config(path, preprocess={**NCHW_FLOAT, "width": 8, "height": 8})) == []


def test_frames_at_their_own_size_that_fail_are_a_warning(tmp_path: Path) -> None:
    """With width and height 0 the camera's frame size decides; a 640x480 test frame that
    fails is reported, but the configuration is not refused."""
    path = flattening_classifier_model(tmp_path / "flat.onnx", size=8)
    (warning,) = check(model_config(path, preprocess=NCHW_FLOAT))
    assert warning.startswith("model input 'images' [1, 3, 'height', 'width']: a 640x480 test "
                              "frame fails in onnxruntime (Reshape node:")
    assert warning.endswith("model.preprocess.width and height are 0, so each frame goes in at "
                            "its own size: set them to a size the model accepts")


# -- labels_offset by adapter -------------------------------------------------------------


@pytest.mark.parametrize(("adapter", "offset", "expected"), [
    ("ssd", None, 1), ("yolo", None, 0), ("classification", None, 0), ("raw", None, 0),
    ("ssd", 0, 0), ("yolo", 1, 1),
])
def test_labels_offset_defaults_by_adapter(adapter: str, offset: int | None,
                                           expected: int) -> None:
    model: dict[str, Any] = {"adapter": adapter}
    if offset is not None:
        model["labels_offset"] = offset
    cfg = parse_config({"model": model}).model
    assert cfg.labels_offset == offset
    assert cfg.resolved_labels_offset == expected
    with pytest.raises(ConfigError, match=r"model\.labels_offset: expected a value >= 0"):
        parse_config({"model": {**model, "labels_offset": -1}})


def test_yolo_labels_start_at_class_0_by_default(tmp_path: Path) -> None:
    labels = labels_file(tmp_path / "yolo.txt", 80, first="person")
    cfg = parse_config({"model": {"adapter": "yolo", "labels": labels}})
    extractor = make_measurer(cfg).outputs
    assert extractor.label(0) == "person" and extractor.label(79) == "c79"


# -- labels against the model's classes ---------------------------------------------------------


@pytest.mark.parametrize(("shape", "expected"), [
    ((1, 84, 8400), 80), ((1, 84, "anchors"), 80), (("batch", 84, "anchors"), 80),
    ((1, 25200, 85), 80), ((1, "anchors", 85), 80), ((1, "c", "n"), None),
])
def test_yolo_classes_from_the_output_shape(shape: tuple[int | str, ...],
                                            expected: int | None) -> None:
    found = model_classes("yolo", [TensorSpec("output0", shape, "tensor(float)")])
    assert (found[0] if found else None) == expected


def test_classification_and_other_classes_from_the_output_shape() -> None:
    assert model_classes("classification", [TensorSpec("p", (1, 1001), "")]) == (
        1001, "classification output 'p' [1, 1001]")
    assert model_classes("classification", [TensorSpec("p", (1, "classes"), "")]) is None
    assert model_classes("raw", [TensorSpec("p", (1, 1001), "")]) is None
    assert model_classes("ssd", [TensorSpec("detection_classes", (1, 100), "")]) is None


@pytest.fixture(scope="module")
def yolo80(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = yolo_v8_output([(10.0, 10.0, 4.0, 4.0)], [[0.0] * 80], anchors=100)
    return constant_model(tmp_path_factory.mktemp("yolo80") / "yolo80.onnx", out)


def yolo_config(path: Path, **model: Any) -> ModelConfig:
    return model_config(path, "yolo", {**NCHW_FLOAT, "width": 64, "height": 64}, **model)


def test_yolo_labels_that_fit_give_no_warning(tmp_path: Path, yolo80: Path) -> None:
    labels = labels_file(tmp_path / "80.txt", 80)
    assert check(yolo_config(yolo80, labels=labels)) == []
    assert InferenceEngine(yolo_config(yolo80, labels=labels)).warnings == []


def test_yolo_labels_shifted_by_one_are_a_start_up_warning(
        tmp_path: Path, yolo80: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = yolo_config(yolo80, labels=labels_file(tmp_path / "80.txt", 80), labels_offset=1)
    expected = ("model.labels: 80 names for class ids 1..80 (model.labels_offset = 1), but the "
                "model has 80 classes, ids 0..79 (yolo output 'output0' [1, 84, 100]: 84 - 4 "
                "box values): set model.labels_offset = 0")
    caplog.set_level(logging.WARNING, logger="edgewatch.agent.inference.engine")
    engine = InferenceEngine(cfg)  # warns, does not fail
    assert engine.warnings == [expected]
    assert [r.getMessage() for r in caplog.records] == [expected]
    assert check(cfg) == [expected]


def test_yolo_labels_of_another_model_are_a_warning(tmp_path: Path, yolo80: Path) -> None:
    (warning,) = check(yolo_config(yolo80, labels=labels_file(tmp_path / "20.txt", 20)))
    assert warning.startswith("model.labels: 20 names for class ids 0..19 (model.labels_offset "
                              "unset: 0 for yolo), but the model has 80 classes, ids 0..79")
    assert warning.endswith("check model.labels (or set model.labels_offset = 60 if classes "
                            "0..59 are background)")


def test_yolo_v5_classes_are_the_row_length_minus_5(tmp_path: Path) -> None:
    out = yolo_v5_output([(10.0, 10.0, 4.0, 4.0)], [0.5], [[0.0] * 3], anchors=50)
    path = constant_model(tmp_path / "yolo5.onnx", out)
    assert check(yolo_config(path, labels=labels_file(tmp_path / "3.txt", 3))) == []
    (warning,) = check(yolo_config(path, labels=labels_file(tmp_path / "4.txt", 4)))
    assert "4 names for class ids 0..3" in warning
    assert "the model has 3 classes, ids 0..2 (yolo output 'output0' [1, 50, 8]: 8 - 5 box " \
           "values and objectness)" in warning


def test_classifier_with_a_background_class(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "cls.onnx", np.zeros((1, 11)), input_shape=(1, 3, 8, 8))
    labels = labels_file(tmp_path / "10.txt", 10)
    pre = {**NCHW_FLOAT, "width": 8, "height": 8}
    (warning,) = check(model_config(path, preprocess=pre, labels=labels))
    assert warning == (
        "model.labels: 10 names for class ids 0..9 (model.labels_offset unset: 0 for "
        "classification), but the model has 11 classes, ids 0..10 (classification output "
        "'output0' [1, 11]): check model.labels (or set model.labels_offset = 1 if class 0 is "
        "background)")
    assert check(model_config(path, preprocess=pre, labels=labels, labels_offset=1)) == []


def test_raw_models_have_no_classes_to_check(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "raw.onnx", np.zeros((1, 11)), input_shape=(1, 3, 8, 8))
    cfg = model_config(path, "raw", {**NCHW_FLOAT, "width": 8, "height": 8},
                       labels=labels_file(tmp_path / "3.txt", 3))
    assert check(cfg) == []


def test_an_unreadable_labels_file_is_a_configuration_error(tmp_path: Path,
                                                            yolo80: Path) -> None:
    cfg = yolo_config(yolo80, labels=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match=r"^model.labels: cannot read .*missing.txt \(No such"):
        check(cfg)
    assert InferenceEngine(cfg).warnings == []  # left to the measurer, which loads them


# -- the real SSDLite model and its COCO labels -------------------------------------------------


def ssd_config(assets: Path, **model: Any) -> ModelConfig:
    return model_config(assets / "models" / "ssdlite_mobilenet_v2_coco.onnx", "ssd", **model)


def test_real_ssd_with_its_coco_labels_passes(assets: Path) -> None:
    cfg = ssd_config(assets, labels=str(assets / "models" / "coco_labels.txt"))
    assert cfg.resolved_labels_offset == 1
    assert check(cfg) == []
    assert InferenceEngine(cfg).warnings == []


def test_a_session_without_a_memory_arena_is_checked_too(assets: Path) -> None:
    cfg = ssd_config(assets, labels=str(assets / "models" / "coco_labels.txt"))
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False  # an application's session may turn it off
    session = ort.InferenceSession(cfg.path, options, providers=cfg.providers)
    assert check_configured_model(cfg, session) == []
    result = InferenceEngine(cfg, session).infer(np.zeros((48, 64, 3), np.uint8))
    assert isinstance(result.output, Detections) and not result.nonfinite


def test_real_ssd_with_coco_labels_from_0_is_a_warning(assets: Path) -> None:
    cfg = ssd_config(assets, labels=str(assets / "models" / "coco_labels.txt"), labels_offset=0)
    expected = ("model.labels: 90 names for class ids 0..89 (model.labels_offset = 0), but the "
                "ssd adapter's COCO ids start at 1 ('person'): set model.labels_offset = 1 (or "
                "remove it)")
    assert check(cfg) == [expected]
    assert InferenceEngine(cfg).warnings == [expected]


def test_real_ssd_with_the_80_class_coco_list_is_a_warning(assets: Path, tmp_path: Path) -> None:
    """YOLO's contiguous 80-name list misnames the SSD's COCO ids from 12 on."""
    cfg = ssd_config(assets, labels=labels_file(tmp_path / "coco80.txt", 80, first="person"))
    assert check(cfg) == [
        "model.labels: 80 names for class ids 1..80 (model.labels_offset unset: 1 for ssd), but "
        "TF COCO SSD ids go up to 90 with gaps (id 12 is unused): use the 90-line COCO list "
        "with placeholders for the unused ids"]


def test_ssd_labels_that_are_not_coco_are_not_judged(assets: Path, tmp_path: Path) -> None:
    """A custom SSD does not declare its classes: nothing to compare with."""
    cfg = ssd_config(assets, labels=labels_file(tmp_path / "own.txt", 3, first="forklift"))
    assert label_warnings(cfg, []) == []
