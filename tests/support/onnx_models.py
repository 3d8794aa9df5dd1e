"""Small ONNX models for the tests, built with onnx.helper and saved to a given directory.

Every builder returns the path of the saved ``.onnx`` file. "Constant" models compute
``output = value + 0 * ReduceSum(input)``: the output is a known tensor that still depends
(formally) on the input, so onnxruntime cannot drop the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8

_ELEM = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "float16": TensorProto.FLOAT16}


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgewatch-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def constant_outputs_model(
    path: Path,
    outputs: Mapping[str, np.ndarray],
    *,
    input_shape: Sequence[int | str] = (1, 3, 64, 64),
    input_dtype: str = "float32",
    input_name: str = "images",
) -> Path:
    """A model whose float32 outputs (in the given order) are the given constant tensors."""
    nodes = []
    x = input_name
    if input_dtype != "float32":
        nodes.append(helper.make_node("Cast", [x], ["x_f32"], to=TensorProto.FLOAT))
        x = "x_f32"
    nodes += [
        helper.make_node("ReduceSum", [x], ["total"], keepdims=0),
        helper.make_node("Constant", [], ["zero"],
                         value=numpy_helper.from_array(np.array(0.0, np.float32))),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
    ]
    graph_outputs = []
    for i, (name, value) in enumerate(outputs.items()):
        value = np.asarray(value, np.float32)
        nodes.append(helper.make_node(
            "Constant", [], [f"const{i}"], value=numpy_helper.from_array(value, f"const{i}")
        ))
        nodes.append(helper.make_node("Add", [f"const{i}", "nothing"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, value.shape))
    graph = helper.make_graph(
        nodes, "constant_outputs",
        [helper.make_tensor_value_info(input_name, _ELEM[input_dtype], list(input_shape))],
        graph_outputs,
    )
    return _save(graph, path)


def constant_model(path: Path, value: np.ndarray, *, output_name: str = "output0",
                   **kwargs: object) -> Path:
    """One constant output named ``output_name``."""
    return constant_outputs_model(path, {output_name: value}, **kwargs)  # type: ignore[arg-type]


def classifier_model(path: Path, weights: np.ndarray, *, size: int = 16) -> Path:
    """Input float32 [1, 3, size, size] NCHW -> global average pool -> MatMul -> logits [1, C].

    The logits depend on the input, so different frames give different outputs.
    """
    w = np.asarray(weights, np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w, "w")),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, w.shape[1]])],
    )
    return _save(graph, path)


def statistics_model(path: Path, *, size: int = 8) -> Path:
    """Input float32 [1, 3, size, size] -> outputs ``mean`` (ReduceMean, [1, 1, 1, 1]) and
    ``doubled`` (2 * input): a model for the raw adapter."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Constant", [], ["two"],
                         value=numpy_helper.from_array(np.array(2.0, np.float32))),
        helper.make_node("Mul", ["images", "two"], ["doubled"]),
    ]
    shape = [1, 3, size, size]
    graph = helper.make_graph(
        nodes, "statistics",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, 1, 1, 1]),
         helper.make_tensor_value_info("doubled", TensorProto.FLOAT, shape)],
    )
    return _save(graph, path)


def always_failing_model(path: Path) -> Path:
    """Input float32 [1, 3, "height", "width"] -> Reshape to its own shape with a trailing 7:
    a valid model that onnxruntime loads but that fails when run, on every frame."""
    nodes = [
        helper.make_node("Shape", ["images"], ["dims"]),
        helper.make_node("Constant", [], ["seven"],
                         value=numpy_helper.from_array(np.array([7], np.int64))),
        helper.make_node("Concat", ["dims", "seven"], ["target"], axis=0),
        helper.make_node("Reshape", ["images", "target"], ["stretched"]),
    ]
    graph = helper.make_graph(
        nodes, "always_failing",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("stretched", TensorProto.FLOAT,
                                       [1, 3, "height", "width", 7])],
    )
    return _save(graph, path)


def yolo_v8_output(boxes: Sequence[tuple[float, float, float, float]],
                   class_scores: Sequence[Sequence[float]], anchors: int) -> np.ndarray:
    """A ``[1, 4 + nc, anchors]`` tensor: listed boxes (cx, cy, w, h) and their class scores
    first, the remaining anchors with zero scores."""
    nc = len(class_scores[0])
    out = np.zeros((1, 4 + nc, anchors), np.float32)
    for i, (box, scores) in enumerate(zip(boxes, class_scores, strict=True)):
        out[0, :4, i] = box
        out[0, 4:, i] = scores
    out[0, :4, len(boxes):] = np.array([1.0, 1.0, 2.0, 2.0])[:, None]
    return out


def yolo_v5_output(boxes: Sequence[tuple[float, float, float, float]],
                   objectness: Sequence[float], class_probs: Sequence[Sequence[float]],
                   anchors: int) -> np.ndarray:
    """A ``[1, anchors, 5 + nc]`` tensor: (cx, cy, w, h, objectness, class probabilities...)."""
    nc = len(class_probs[0])
    out = np.zeros((1, anchors, 5 + nc), np.float32)
    out[0, :, :4] = (1.0, 1.0, 2.0, 2.0)
    for i, (box, obj, probs) in enumerate(zip(boxes, objectness, class_probs, strict=True)):
        out[0, i, :4] = box
        out[0, i, 4] = obj
        out[0, i, 5:] = probs
    return out


def flattening_classifier_model(path: Path, *, size: int = 8, classes: int = 3) -> Path:
    """Input float32 [1, 3, "height", "width"] (dims declared dynamic) -> Reshape to
    [1, 3 * size * size] -> MatMul -> logits [1, classes]: the model only runs on
    size x size frames, which onnxruntime reports only when it runs."""
    w = np.full((3 * size * size, classes), 0.01, np.float32)
    nodes = [
        helper.make_node("Constant", [], ["shape"],
                         value=numpy_helper.from_array(np.array([1, 3 * size * size], np.int64))),
        helper.make_node("Reshape", ["images", "shape"], ["flat"]),
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w, "w")),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "flattening_classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
    )
    return _save(graph, path)


# -- the real SSD, post-processed (model updates: tests/agent/update/) -----------------------


def ssd_variant(src: Path, path: Path, kind: str, *, slow_steps: int = 70) -> Path:
    """The SSD graph of ``src`` with its outputs altered, saved to ``path``:

    - ``nan``: every score multiplied by NaN (non-finite outputs);
    - ``shifted``: every box moved by half the frame (detections that no longer match);
    - ``slow``: a chain of ``slow_steps`` 256x768 @ 768x768 MatMul + Tanh on the input,
      added times 0 to ``num_detections`` (same outputs, many times the work);
    - ``collapse``: every score multiplied by 0.01 (no detection above the threshold).
    """
    model = onnx.load(str(src))
    graph = model.graph
    outs = {o.name.split(":")[0]: o.name for o in graph.output}
    image = graph.input[0].name

    def rewire(name: str) -> str:
        raw = name + "_raw"
        for node in graph.node:
            for i, o in enumerate(node.output):
                if o == name:
                    node.output[i] = raw
        return raw

    def const(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    if kind in ("nan", "collapse"):
        scores = outs["detection_scores"]
        raw = rewire(scores)
        factor = np.float32("nan") if kind == "nan" else np.float32(0.01)
        graph.node.append(helper.make_node(
            "Mul", [raw, const("ew_factor", np.array(factor, np.float32))], [scores]))
    elif kind == "shifted":
        boxes = outs["detection_boxes"]
        raw = rewire(boxes)
        graph.node.append(helper.make_node(
            "Add", [raw, const("ew_shift", np.array(0.5, np.float32))], [boxes]))
    elif kind == "slow":
        num = outs["num_detections"]
        raw = rewire(num)
        nodes = [
            helper.make_node("Cast", [image], ["ew_f"], to=TensorProto.FLOAT),
            helper.make_node("Slice", ["ew_f", const("ew_s0", np.array([0, 0, 0], np.int64)),
                                       const("ew_s1", np.array([256, 256, 3], np.int64)),
                                       const("ew_sa", np.array([1, 2, 3], np.int64))],
                             ["ew_sl"]),
            helper.make_node("Reshape", ["ew_sl", const("ew_shape", np.array([256, 768],
                                                                             np.int64))],
                             ["ew_x0"]),
        ]
        w = const("ew_w", (np.random.default_rng(0).standard_normal((768, 768)) / 768)
                  .astype(np.float32))
        last = "ew_x0"
        for k in range(slow_steps):
            nodes.append(helper.make_node("MatMul", [last, w], [f"ew_m{k}"]))
            nodes.append(helper.make_node("Tanh", [f"ew_m{k}"], [f"ew_x{k + 1}"]))
            last = f"ew_x{k + 1}"
        nodes += [
            helper.make_node("ReduceSum", [last], ["ew_sum"], keepdims=0),
            helper.make_node("Mul", ["ew_sum", const("ew_zero", np.array(0.0, np.float32))],
                             ["ew_nothing"]),
            helper.make_node("Add", [raw, "ew_nothing"], [num]),
        ]
        graph.node.extend(nodes)
    else:
        raise ValueError(f"unknown SSD variant {kind!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
