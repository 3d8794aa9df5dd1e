"""Output adapters and model loading, on real onnxruntime sessions of small generated models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.inference.finite import all_finite
from edgewatch.agent.inference.preprocess import LETTERBOX_FILL, Preprocessor
from edgewatch.agent.records import Classification, Detections, RawOutputs
from edgewatch.config.agent import parse_config
from edgewatch.config.model import ModelConfig
from edgewatch.errors import AdapterMismatch, ModelError
from support.onnx_models import (
    classifier_model,
    constant_model,
    constant_outputs_model,
    statistics_model,
    yolo_v5_output,
    yolo_v8_output,
)
from support.paths import REPO

TOL = 1e-5


def model_config(path: Path | str, adapter: str, **overrides: Any) -> ModelConfig:
    """A model section: 64x64 float32 NCHW RGB input unless overridden."""
    pre = {"width": 64, "height": 64, "layout": "NCHW", "dtype": "float32",
           "color": "RGB", "scale": 1.0 / 255}
    pre.update(overrides.pop("preprocess", {}))
    model = {"path": str(path), "adapter": adapter, "preprocess": pre,
             "postprocess": overrides.pop("postprocess", {}), **overrides}
    return parse_config({"model": model}).model


def frame(width: int = 64, height: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def detections(engine: InferenceEngine, image: np.ndarray) -> Detections:
    result = engine.infer(image)
    assert not result.nonfinite
    assert isinstance(result.output, Detections)
    return result.output


# -- YOLO v8 / v11: [1, 4 + nc, N] -----------------------------------------------------------

# (cx, cy, w, h) in model-input pixels (64x64) and class scores for 3 classes.
V8_BOXES = [
    (20.0, 30.0, 10.0, 10.0),  # A: class 0, 0.9
    (21.0, 31.0, 10.0, 10.0),  # B: class 0, 0.8, IoU 0.68 with A -> suppressed
    (22.0, 30.0, 10.0, 10.0),  # C: class 1, 0.7, overlaps A but another class -> kept
    (40.0, 40.0, 8.0, 8.0),    # D: class 2, 0.2, under the floor (0.4 - 0.1) -> dropped
    (48.0, 36.0, 8.0, 12.0),   # E: class 2, 0.35, near threshold candidate -> kept
    (50.0, 20.0, 6.0, 6.0),    # F: class 0, 0.5, far from A -> kept
]
V8_SCORES = [
    [0.9, 0.1, 0.05],
    [0.8, 0.0, 0.0],
    [0.1, 0.7, 0.0],
    [0.0, 0.0, 0.2],
    [0.0, 0.05, 0.35],
    [0.5, 0.0, 0.0],
]
# Kept, best first: A, C, F, E as (x1, y1, x2, y2) model-input pixels.
V8_KEPT_XYXY = np.array([[15, 25, 25, 35], [17, 25, 27, 35], [47, 17, 53, 23], [44, 30, 52, 42]],
                        np.float64)
V8_KEPT_SCORES = [0.9, 0.7, 0.5, 0.35]
V8_KEPT_CLASSES = [0, 1, 0, 2]


@pytest.fixture(scope="module")
def yolo_v8_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = yolo_v8_output(V8_BOXES, V8_SCORES, anchors=16)
    return constant_model(tmp_path_factory.mktemp("yolo8") / "yolo8.onnx", out)


def test_yolo_v8_decodes_with_class_aware_nms(yolo_v8_path: Path) -> None:
    engine = InferenceEngine(model_config(yolo_v8_path, "yolo"))
    d = detections(engine, frame(64, 64))
    np.testing.assert_allclose(d.boxes, V8_KEPT_XYXY / 64.0, atol=TOL)
    np.testing.assert_allclose(d.scores, V8_KEPT_SCORES, atol=TOL)
    assert d.classes.tolist() == V8_KEPT_CLASSES
    assert d.classes.dtype == np.int64
    assert d.best_score == pytest.approx(0.9, abs=TOL)
    above = d.above(0.4)
    assert above.classes.tolist() == [0, 1, 0]


def test_yolo_v8_letterbox_maps_boxes_back_to_the_wide_frame(yolo_v8_path: Path) -> None:
    # 128x64 frame into 64x64: scale 0.5, resized to 64x32, 16 rows of padding on top.
    cfg = model_config(yolo_v8_path, "yolo", preprocess={"resize": "letterbox"})
    d = detections(InferenceEngine(cfg), frame(128, 64))
    x = V8_KEPT_XYXY[:, [0, 2]] / 0.5 / 128
    y = (V8_KEPT_XYXY[:, [1, 3]] - 16.0) / 0.5 / 64
    expected = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
    np.testing.assert_allclose(d.boxes, expected, atol=TOL)
    np.testing.assert_allclose(d.boxes[0], [15 / 64, 9 / 32, 25 / 64, 19 / 32], atol=TOL)
    np.testing.assert_allclose(d.scores, V8_KEPT_SCORES, atol=TOL)
    assert d.classes.tolist() == V8_KEPT_CLASSES


def test_yolo_v8_stretch_normalises_by_the_input_size(yolo_v8_path: Path) -> None:
    cfg = model_config(yolo_v8_path, "yolo", preprocess={"resize": "stretch"})
    d = detections(InferenceEngine(cfg), frame(128, 64))
    np.testing.assert_allclose(d.boxes, V8_KEPT_XYXY / 64.0, atol=TOL)


@pytest.mark.parametrize("size", [(128, 64), (100, 60), (60, 100), (64, 64), (200, 37)])
def test_letterbox_geometry_matches_where_the_frame_lands(size: tuple[int, int]) -> None:
    """A white rectangle in the frame, found in the letterboxed tensor and mapped back."""
    w, h = size
    image = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = w // 4, h // 4, 3 * w // 4, 3 * h // 4
    image[y1:y2, x1:x2] = 255
    pre = parse_config({"model": {"preprocess": {
        "width": 64, "height": 64, "resize": "letterbox", "layout": "NHWC", "dtype": "uint8",
    }}}).model.preprocess
    tensor, geometry = Preprocessor(pre)(image)
    assert tensor.shape == (1, 64, 64, 3)
    canvas = tensor[0, :, :, 0]
    content = np.argwhere(canvas != LETTERBOX_FILL)
    top, left = content.min(axis=0)
    bottom, right = content.max(axis=0) + 1
    assert (geometry.pad_x, geometry.pad_y) == (left, top)
    assert min(left, top) == 0  # fills one axis
    assert (64 - right) - left in (0, 1) and (64 - bottom) - top in (0, 1)  # centred
    bright = np.argwhere(canvas > 127)
    (ty1, tx1), (ty2, tx2) = bright.min(axis=0), bright.max(axis=0) + 1
    mapped = geometry.to_frame_normalised(np.array([[tx1, ty1, tx2, ty2]], np.float32))[0]
    # Resampling blurs the edges by up to a pixel of the model input.
    tol = 1.0 / geometry.scale / min(w, h) + 1e-6
    np.testing.assert_allclose(mapped, [x1 / w, y1 / h, x2 / w, y2 / h], atol=tol)


@pytest.mark.parametrize("size", [(192, 128), (300, 200), (96, 64)])
def test_letterbox_of_a_frame_with_the_inputs_aspect_ratio_is_a_plain_resize(
        size: tuple[int, int]) -> None:
    """No border to add: the tensor is the resized frame itself (no extra copy per frame),
    as an application's own ``cv2.resize`` gives it, and the geometry has no padding."""
    w, h = size
    image = np.random.default_rng(3).integers(0, 256, (h, w, 3), np.uint8)
    pre = parse_config({"model": {"preprocess": {
        "width": 96, "height": 64, "resize": "letterbox", "layout": "NHWC",
        "dtype": "uint8", "color": "BGR",
    }}}).model.preprocess
    tensor, geometry = Preprocessor(pre)(image)
    expected = image if size == (96, 64) else cv2.resize(
        image, (96, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(tensor[0], expected)
    assert (geometry.pad_x, geometry.pad_y, geometry.scale) == (0.0, 0.0, 96 / w)


def test_yolo_keeps_a_score_exactly_at_the_floor(tmp_path: Path) -> None:
    out = yolo_v8_output([(20, 20, 10, 10), (45, 45, 10, 10)], [[0.5, 0.0], [0.25, 0.0]],
                         anchors=8)
    path = constant_model(tmp_path / "edge.onnx", out)
    cfg = model_config(path, "yolo", postprocess={"score_threshold": 0.5, "near_band": 0.0})
    d = detections(InferenceEngine(cfg), frame())
    assert d.scores.tolist() == [0.5]
    np.testing.assert_allclose(d.boxes, [[15 / 64, 15 / 64, 25 / 64, 25 / 64]], atol=TOL)


def test_yolo_respects_max_detections(tmp_path: Path) -> None:
    boxes = [(8.0 + 12 * i, 32.0, 8.0, 8.0) for i in range(5)]
    scores = [[0.9 - 0.1 * i, 0.0] for i in range(5)]
    path = constant_model(tmp_path / "many.onnx", yolo_v8_output(boxes, scores, anchors=10))
    cfg = model_config(path, "yolo", postprocess={"max_detections": 2})
    d = detections(InferenceEngine(cfg), frame())
    np.testing.assert_allclose(d.scores, [0.9, 0.8], atol=TOL)


def test_yolo_with_no_candidate_is_empty_but_keeps_best_score(tmp_path: Path) -> None:
    out = yolo_v8_output([(20, 20, 10, 10)], [[0.1, 0.05]], anchors=8)
    path = constant_model(tmp_path / "quiet.onnx", out)
    d = detections(InferenceEngine(model_config(path, "yolo")), frame())
    assert d.boxes.shape == (0, 4) and d.scores.size == 0 and d.classes.size == 0
    assert d.best_score == pytest.approx(0.1, abs=TOL)


# -- YOLO v5: [1, N, 5 + nc], objectness x class probability ----------------------------------


def test_yolo_v5_multiplies_objectness_into_class_probabilities(tmp_path: Path) -> None:
    out = yolo_v5_output(
        [(20, 30, 10, 10), (21, 31, 10, 10), (22, 30, 10, 10), (40, 40, 8, 8)],
        objectness=[0.9, 0.8, 0.9, 0.95],
        class_probs=[[0.8, 0.1], [0.7, 0.05], [0.1, 0.5], [0.2, 0.1]],
        anchors=12,
    )
    assert out.shape == (1, 12, 7)
    path = constant_model(tmp_path / "yolo5.onnx", out)
    cfg = model_config(path, "yolo", preprocess={"resize": "stretch"})
    d = detections(InferenceEngine(cfg), frame(128, 64))
    # 0.72 (class 0) kept; 0.56 (class 0, overlapping) suppressed; 0.45 (class 1) kept;
    # 0.95 * 0.2 = 0.19 under the floor although its objectness is the highest.
    np.testing.assert_allclose(d.scores, [0.72, 0.45], atol=TOL)
    assert d.classes.tolist() == [0, 1]
    np.testing.assert_allclose(d.boxes, np.array([[15, 25, 25, 35], [17, 25, 27, 35]]) / 64.0,
                               atol=TOL)
    assert d.best_score == pytest.approx(0.72, abs=TOL)


# -- classification -----------------------------------------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


LOGITS = np.array([1.0, 2.0, 3.0, 0.5])
PROBS = np.array([0.1, 0.2, 0.6, 0.1])


@pytest.mark.parametrize(
    ("values", "shape", "mode", "expected"),
    [
        (LOGITS, (1, 4), "auto", softmax(LOGITS)),
        (LOGITS, (1, 4, 1, 1), "auto", softmax(LOGITS)),
        (PROBS, (1, 4), "auto", PROBS),
        (PROBS, (1, 4, 1, 1), "auto", PROBS),
        (PROBS, (1, 4), "always", softmax(PROBS)),
        (LOGITS, (1, 4), "never", LOGITS),
    ],
    ids=["logits", "logits-4d", "probs", "probs-4d", "probs-always", "logits-never"],
)
def test_classification(tmp_path: Path, values: np.ndarray, shape: tuple[int, ...], mode: str,
                        expected: np.ndarray) -> None:
    path = constant_model(tmp_path / "cls.onnx", values.reshape(shape), output_name="scores")
    cfg = model_config(path, "classification", postprocess={"softmax": mode})
    result = InferenceEngine(cfg).infer(frame())
    assert not result.nonfinite
    out = result.output
    assert isinstance(out, Classification)
    assert out.probs.dtype == np.float32 and out.probs.shape == (4,)
    np.testing.assert_allclose(out.probs, expected, atol=TOL)
    assert int(out.probs.argmax()) == 2


def test_classification_follows_the_input(tmp_path: Path) -> None:
    weights = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) * 10
    path = classifier_model(tmp_path / "clf.onnx", weights, size=64)
    engine = InferenceEngine(model_config(path, "classification",
                                          preprocess={"color": "BGR"}))
    for channel in range(3):
        image = np.zeros((64, 64, 3), np.uint8)
        image[..., channel] = 255
        out = engine.infer(image).output
        assert isinstance(out, Classification)
        assert int(out.probs.argmax()) == channel
        np.testing.assert_allclose(out.probs.sum(), 1.0, atol=TOL)


# -- raw ----------------------------------------------------------------------------------


def test_raw_outputs_are_keyed_by_output_name(tmp_path: Path) -> None:
    path = statistics_model(tmp_path / "stats.onnx", size=8)
    cfg = model_config(path, "raw", preprocess={"width": 8, "height": 8})
    engine = InferenceEngine(cfg)
    image = frame(8, 8, seed=3)
    result = engine.infer(image)
    assert isinstance(result.output, RawOutputs)
    tensors = result.output.tensors
    assert list(tensors) == ["mean", "doubled"]
    tensor, _ = engine.preprocess(image)
    np.testing.assert_allclose(tensors["doubled"], 2.0 * tensor, rtol=1e-6)
    np.testing.assert_allclose(tensors["mean"].ravel(), [tensor.mean()], rtol=1e-5)
    assert tensors["mean"].shape == (1, 1, 1, 1)


# -- SSD, synthetic -------------------------------------------------------------------------


def test_ssd_matches_outputs_by_name_in_any_order(tmp_path: Path) -> None:
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.5, 0.3, 1.2],
                       [0.2, 0.2, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9], [0, 0, 0, 0]]])
    path = constant_outputs_model(
        tmp_path / "ssd.onnx",
        {
            "detection_scores:0": np.array([[0.9, 0.35, 0.2, 0.8, 0.0]]),
            "detection_classes:0": np.array([[1.0, 3.0, 1.0, 1.0, 0.0]]),
            "detection_boxes:0": boxes,
            "num_detections:0": np.array([3.0]),
        },
        input_shape=(1, "height", "width", 3), input_dtype="uint8", input_name="image_tensor:0",
    )
    cfg = model_config(path, "ssd", preprocess={
        "width": 0, "height": 0, "layout": "NHWC", "dtype": "uint8", "scale": 1.0})
    d = detections(InferenceEngine(cfg), frame(40, 30))
    # Only the first num_detections rows count; 0.2 is under the floor; 0.8 is past num.
    np.testing.assert_allclose(d.scores, [0.9, 0.35], atol=TOL)
    assert d.classes.tolist() == [1, 3]
    np.testing.assert_allclose(d.boxes, [[0.2, 0.1, 0.6, 0.5], [0.5, 0.0, 1.0, 0.3]], atol=TOL)
    assert d.best_score == pytest.approx(0.9, abs=TOL)


# -- mismatches at load time ------------------------------------------------------------------


def two_outputs(path: Path) -> Path:
    return constant_outputs_model(path, {"a": np.zeros((1, 4)), "b": np.zeros((1, 4))})


MISMATCHES = [
    ("classification-two-outputs", two_outputs, "classification", {},
     r"adapter 'classification': expected exactly one output of class scores"),
    ("classification-spatial", lambda p: constant_model(p, np.zeros((1, 4, 2, 2))),
     "classification", {}, r"expected an output shaped \[1, C\]"),
    ("yolo-2d", lambda p: constant_model(p, np.zeros((1, 10))), "yolo", {},
     r"adapter 'yolo': expected the first output to be \[1, 4\+nc, N\]"),
    ("yolo-too-narrow", lambda p: constant_model(p, np.zeros((1, 4, 20))), "yolo", {},
     r"too few values per box"),
    ("ssd-unnamed", lambda p: constant_model(p, np.zeros((1, 10, 4))), "ssd", {},
     r"adapter 'ssd': expected exactly one output named like 'num_detections'"),
    ("one-channel", lambda p: constant_model(p, np.zeros((1, 4)), input_shape=(1, 1, 64, 64)),
     "classification", {}, r"has 1 channel on the NCHW channel axis \(a greyscale model\)"),
    ("nhwc-vs-nchw", lambda p: constant_model(p, np.zeros((1, 4))), "classification",
     {"layout": "NHWC"}, r'\[1, 3, 64, 64\] is NCHW: set model.preprocess.layout = "NCHW"'),
    ("dtype", lambda p: constant_model(p, np.zeros((1, 4))), "classification",
     {"dtype": "uint8"}, r"tensor\(float\): model.preprocess.dtype is 'uint8'"),
    ("size-0", lambda p: constant_model(p, np.zeros((1, 4))), "classification",
     {"width": 0, "height": 0}, r"fixed height 64, but model.preprocess.height is 0"),
    ("width-32", lambda p: constant_model(p, np.zeros((1, 4))), "classification",
     {"width": 32}, r"fixed width 64, but model.preprocess.width is 32"),
    ("not-an-image", lambda p: constant_model(p, np.zeros((1, 4)), input_shape=(1, 64)),
     "classification", {}, r"expected a 4-D image batch"),
]


@pytest.mark.parametrize(("build", "adapter", "pre", "message"),
                         [m[1:] for m in MISMATCHES], ids=[m[0] for m in MISMATCHES])
def test_mismatch_fails_at_load(tmp_path: Path, build: Any, adapter: str,
                                pre: dict[str, Any], message: str) -> None:
    path = build(tmp_path / "model.onnx")
    cfg = model_config(path, adapter, preprocess=pre)
    with pytest.raises(AdapterMismatch, match=message):
        InferenceEngine(cfg)


def test_unknown_input_name_fails_at_load(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "m.onnx", np.zeros((1, 4)))
    with pytest.raises(AdapterMismatch, match=r"input_name 'pixels' not among inputs \['images'\]"):
        InferenceEngine(model_config(path, "classification", input_name="pixels"))


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(ModelError, match="model file not found") as info:
        InferenceEngine(model_config(missing, "raw"))
    assert str(missing) in str(info.value)
    assert not isinstance(info.value, AdapterMismatch)


def test_corrupt_model_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match=r"cannot load model .*corrupt\.onnx") as info:
        InferenceEngine(model_config(path, "raw"))
    assert "\n" not in str(info.value)


# -- non-finite outputs -------------------------------------------------------------------


def poisoned(value: float) -> dict[str, np.ndarray]:
    det = yolo_v8_output([(20, 20, 10, 10)], [[0.9, 0.0]], anchors=8)
    det[0, 0, 3] = value
    cls = np.array([[1.0, value, 0.0]])
    return {"yolo": det, "classification": cls, "raw": cls}


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("adapter", ["yolo", "classification", "raw"])
def test_nonfinite_outputs_give_an_empty_output(tmp_path: Path, adapter: str,
                                                value: float) -> None:
    path = constant_model(tmp_path / "bad.onnx", poisoned(value)[adapter])
    engine = InferenceEngine(model_config(path, adapter))
    result = engine.infer(frame())
    assert result.nonfinite is True
    out = result.output
    expected = {"yolo": Detections, "classification": Classification, "raw": RawOutputs}
    assert type(out) is expected[adapter]
    if isinstance(out, Detections):
        assert out.boxes.shape == (0, 4) and out.scores.size == 0 and out.best_score == 0.0
    elif isinstance(out, Classification):
        assert out.probs.size == 0
    else:
        assert isinstance(out, RawOutputs) and out.tensors == {}
    assert result.timings.inference_ms >= 0.0
    deferred = engine.infer_deferred(frame())  # the agent's path: same verdict, same output
    assert deferred.nonfinite is True
    assert type(deferred.resolve().output) is type(out)


@pytest.mark.parametrize("adapter", ["yolo", "classification"])
def test_deferred_inference_decodes_to_what_infer_gives(tmp_path: Path, adapter: str) -> None:
    path = constant_model(tmp_path / "ok.onnx", poisoned(0.5)[adapter])
    engine = InferenceEngine(model_config(path, adapter))
    direct, deferred = engine.infer(frame()), engine.infer_deferred(frame())
    assert deferred.nonfinite is False and deferred.timings.postprocess_ms == 0.0
    resolved = deferred.resolve()
    assert resolved.timings.postprocess_ms > 0.0  # the decoding, timed when it happens
    assert repr(resolved.output) == repr(direct.output)


def test_large_finite_outputs_are_finite_and_any_nan_or_inf_is_not() -> None:
    big = np.full((1, 100), 3e38, np.float32)  # finite values whose sum overflows
    ints = np.array([[7]], np.int64)
    assert all_finite([big, ints]) is True
    for bad in (np.nan, np.inf, -np.inf):
        poisoned_big = big.copy()
        poisoned_big[0, 57] = bad
        assert all_finite([ints, poisoned_big]) is False
    mixed = np.array([np.inf, -np.inf], np.float32)  # a sum of NaN, still not finite
    assert all_finite([mixed]) is False


def test_each_frame_size_gets_its_own_letterbox_geometry() -> None:
    pre = model_config("unused.onnx", "yolo", preprocess={"resize": "letterbox"}).preprocess
    prep = Preprocessor(pre)
    _, wide = prep(frame(128, 64))
    _, again = prep(frame(128, 64, seed=1))
    _, tall = prep(frame(64, 128))
    assert again is wide  # computed once per size
    assert (wide.frame_width, wide.frame_height, wide.pad_y) == (128, 64, 16.0)
    assert (tall.frame_width, tall.frame_height, tall.pad_x) == (64, 128, 16.0)


# -- SSD on the real model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_assets() -> Path:
    root = Path(os.environ.get("EDGEWATCH_ASSETS") or REPO.parent / "shared" / "assets")
    model = root / "models" / "ssdlite_mobilenet_v2_coco.onnx"
    video = root / "video" / "vtest.avi"
    missing = [str(p) for p in (model, video) if not p.is_file()]
    if missing:
        pytest.skip(f"shared assets not found: {', '.join(missing)} "
                    "(set EDGEWATCH_ASSETS to the folder holding models/ and video/)")
    return root


def test_ssd_finds_people_on_vtest(shared_assets: Path) -> None:
    cfg = model_config(
        shared_assets / "models" / "ssdlite_mobilenet_v2_coco.onnx", "ssd", intra_op_threads=2,
        preprocess={"width": 0, "height": 0, "layout": "NHWC", "dtype": "uint8",
                    "color": "RGB", "scale": 1.0},
    )
    engine = InferenceEngine(cfg)
    cap = cv2.VideoCapture(str(shared_assets / "video" / "vtest.avi"))
    frames_with_people, total, persons = 0, 0, 0
    try:
        while total < 50:
            ok, image = cap.read()
            assert ok, f"could not read frame {total} of vtest.avi"
            result = engine.infer(image)
            assert not result.nonfinite
            d = result.output
            assert isinstance(d, Detections)
            assert d.boxes.shape == (d.scores.size, 4)
            assert np.all((d.boxes >= 0.0) & (d.boxes <= 1.0))
            assert np.all(d.boxes[:, 2] >= d.boxes[:, 0]) and np.all(d.boxes[:, 3] >= d.boxes[:, 1])
            assert np.all(d.scores >= cfg.postprocess.score_threshold - cfg.postprocess.near_band)
            people = d.above(0.4).classes == 1
            persons += int(people.sum())
            frames_with_people += bool(people.any())
            total += 1
    finally:
        cap.release()
    assert frames_with_people >= 0.9 * total, f"people in {frames_with_people}/{total} frames"
    assert persons >= 2 * total  # about 4 per frame on vtest
