"""Output adapters on their own (edgewatch.agent.inference.adapters): signature checks on
tensor specs and decoding of plain arrays, without a model. ``test_adapters.py`` runs them
inside real onnxruntime sessions."""

from __future__ import annotations

import numpy as np
import pytest

from edgewatch.agent.inference.adapters import ADAPTERS, make_adapter
from edgewatch.agent.inference.adapters.base import OutputAdapter, TensorSpec
from edgewatch.agent.inference.adapters.classification import ClassificationAdapter
from edgewatch.agent.inference.adapters.raw import RawAdapter
from edgewatch.agent.inference.adapters.ssd import SsdAdapter
from edgewatch.agent.inference.adapters.yolo import YoloAdapter
from edgewatch.agent.inference.preprocess import Geometry
from edgewatch.agent.records import Classification, Detections, RawOutputs
from edgewatch.config.model import PostprocessConfig
from edgewatch.errors import AdapterMismatch

POST = PostprocessConfig(score_threshold=0.5, near_band=0.1, max_detections=10)
STRETCH = Geometry(frame_width=640, frame_height=480, input_width=320, input_height=320,
                   scale=0.0)


def test_every_adapter_is_registered_under_its_name() -> None:
    assert {name: cls.name for name, cls in ADAPTERS.items()} == {n: n for n in ADAPTERS}
    assert set(ADAPTERS) == {"ssd", "yolo", "classification", "raw"}
    adapter = make_adapter("yolo", POST)
    assert isinstance(adapter, YoloAdapter) and isinstance(adapter, OutputAdapter)
    assert adapter.floor == pytest.approx(0.4)
    assert make_adapter("ssd", PostprocessConfig(score_threshold=0.05, near_band=0.1)).floor == 0


def test_tensor_spec_fixed_dims() -> None:
    spec = TensorSpec("out", (1, "batch", None, -1, 84), "tensor(float)")
    assert [spec.fixed(i) for i in range(5)] == [1, None, None, None, 84]


def test_a_mismatch_names_the_adapter_and_the_model_outputs() -> None:
    outputs = [TensorSpec("a", (1, 3), "tensor(float)"), TensorSpec("b", (1, 3), "t")]
    with pytest.raises(AdapterMismatch) as caught:
        ClassificationAdapter(POST).check(outputs)
    assert str(caught.value) == ("adapter 'classification': expected exactly one output of "
                                 "class scores (model outputs: a [1, 3], b [1, 3])")


@pytest.mark.parametrize(("adapter", "shapes", "ok"), [
    (ClassificationAdapter, [(1, 1000)], True),
    (ClassificationAdapter, [(1, 1000, 1, 1)], True),
    (ClassificationAdapter, [(1, 1)], False),
    (ClassificationAdapter, [(1, 10, 7)], False),
    (YoloAdapter, [(1, 84, 8400)], True),
    (YoloAdapter, [(1, 25200, 85)], True),
    (YoloAdapter, [(1, 4, 8400)], False),
    (YoloAdapter, [(84, 8400)], False),
    (RawAdapter, [(1, 7), (3,)], True),
    (RawAdapter, [], False),
], ids=lambda v: v.__name__ if isinstance(v, type) else str(v))
def test_signature_checks(adapter: type[OutputAdapter], shapes: list[tuple[int, ...]],
                          ok: bool) -> None:
    outputs = [TensorSpec(f"out{i}", s, "tensor(float)") for i, s in enumerate(shapes)]
    if ok:
        adapter(POST).check(outputs)
    else:
        with pytest.raises(AdapterMismatch, match=f"adapter '{adapter.name}'"):
            adapter(POST).check(outputs)


def test_ssd_outputs_are_matched_by_name_and_boxes_turned_to_xyxy() -> None:
    names = ["detection_scores", "num_detections", "detection_classes", "detection_boxes"]
    shapes = {"num_detections": (1,), "detection_boxes": (1, 100, 4),
              "detection_scores": (1, 100), "detection_classes": (1, 100)}
    adapter = SsdAdapter(POST)
    adapter.check([TensorSpec(n, shapes[n], "tensor(float)") for n in names])
    tensors = {
        "num_detections": np.array([3.0]),
        "detection_boxes": np.array([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.2, 1.0],
                                      [0.3, 0.3, 0.4, 0.4]]]),
        "detection_scores": np.array([[0.9, 0.45, 0.2]]),
        "detection_classes": np.array([[1.0, 3.0, 1.0]]),
    }
    out = adapter.decode([tensors[n] for n in names], STRETCH)
    assert isinstance(out, Detections)
    assert out.best_score == pytest.approx(0.9)
    assert out.scores.tolist() == pytest.approx([0.9, 0.45])  # 0.2 is below the floor
    assert out.classes.tolist() == [1, 3]
    assert np.allclose(out.boxes, [[0.2, 0.1, 0.6, 0.5], [0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(AdapterMismatch, match="detection_boxes must be"):
        adapter.check([TensorSpec(n, (1, 100, 5) if n == "detection_boxes" else shapes[n], "")
                       for n in names])


def test_yolo_v8_rows_are_transposed_and_mapped_to_the_frame() -> None:
    pred = np.zeros((1, 6, 8), np.float32)  # 4 box values + 2 classes, 8 anchors
    pred[0, :, 0] = [160, 160, 64, 32, 0.9, 0.1]  # class 0
    pred[0, :, 1] = [80, 80, 32, 32, 0.2, 0.7]  # class 1
    pred[0, :, 2] = [10, 10, 4, 4, 0.1, 0.1]  # below the floor, like the empty anchors
    out = YoloAdapter(POST).decode([pred], STRETCH)
    assert out.classes.tolist() == [0, 1]
    assert out.scores.tolist() == pytest.approx([0.9, 0.7])
    # stretched: input pixels / input size; (cx, cy, w, h) = (160, 160, 64, 32)
    assert np.allclose(out.boxes[0], [0.4, 0.45, 0.6, 0.55])


def test_yolo_v5_objectness_multiplies_the_class_scores() -> None:
    pred = np.array([[[160, 160, 64, 32, 0.5, 0.9, 0.1]]], np.float32)  # 1 anchor, v5 rows
    pred = np.repeat(pred, 8, axis=1)  # more anchors than values: the v5 layout
    out = YoloAdapter(POST).decode([pred], STRETCH)
    assert out.best_score == pytest.approx(0.45)
    assert out.scores.tolist() == pytest.approx([0.45])  # NMS keeps one of the duplicates


@pytest.mark.parametrize(("mode", "values", "expected"), [
    ("auto", [0.1, 0.7, 0.2], [0.1, 0.7, 0.2]),
    ("auto", [1.0, 2.0, 3.0], list(np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())),
    ("always", [0.1, 0.7, 0.2], list(np.exp([0.1, 0.7, 0.2]) / np.exp([0.1, 0.7, 0.2]).sum())),
    ("never", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
])
def test_classification_softmax_modes(mode: str, values: list[float],
                                      expected: list[float]) -> None:
    post = PostprocessConfig(softmax=mode)  # type: ignore[arg-type]
    out = ClassificationAdapter(post).decode([np.array([values])], STRETCH)
    assert isinstance(out, Classification)
    assert out.probs.tolist() == pytest.approx(expected, rel=1e-6)


def test_raw_outputs_keep_the_checked_names() -> None:
    adapter = RawAdapter(POST)
    a, b = np.ones((1, 2)), np.zeros(3)
    assert list(adapter.decode([a, b], STRETCH).tensors) == ["output0", "output1"]
    adapter.check([TensorSpec("logits", (1, 2), ""), TensorSpec("embedding", (3,), "")])
    out = adapter.decode([a, b], STRETCH)
    assert isinstance(out, RawOutputs) and list(out.tensors) == ["logits", "embedding"]
    assert adapter.empty().tensors == {}
