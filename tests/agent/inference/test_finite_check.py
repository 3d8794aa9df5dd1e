"""The inference thread's finite check of model outputs: right answer, no warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgewatch.agent.inference.finite import all_finite

LARGE = 300_000  # values: 1.2 MB of float32


def ssd_like(fill: float = 0.5) -> list[np.ndarray]:
    return [np.array([3.0], np.float32), np.full((1, 100, 4), fill, np.float32),
            np.full((1, 100), fill, np.float32), np.full((1, 100), 1.0, np.float32)]


@pytest.mark.parametrize("shape", [(1, 100, 4), (1, LARGE)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_any_nan_or_inf_is_found_small_or_large(shape: tuple[int, ...], dtype: type,
                                                 bad: float) -> None:
    t: np.ndarray = np.ones(shape, dtype)
    assert all_finite([t])
    t.flat[t.size // 2] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # silent on NaN and Inf
        assert not all_finite([np.ones(3, np.float32), t])


def test_finite_values_whose_sum_overflows_are_finite() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # silent on overflow too
        assert all_finite([np.full(10, 3e38, np.float32)])
        assert all_finite([np.full(10, 2e19, np.float32)])  # its squares overflow
        assert all_finite([np.full(LARGE, 1e308)])
        assert all_finite([np.full(100, 60000, np.float16)])
        assert not all_finite([np.array([np.inf, -np.inf], np.float32)])


def test_integer_empty_and_strided_tensors() -> None:
    assert all_finite([np.array([2**62] * 4), np.zeros((0, 4), np.float32)])
    strided = np.ones((4, 6), np.float32)
    strided[2, 3] = np.nan
    assert all_finite([strided[:, ::2]])  # the NaN is in a column it skips
    assert not all_finite([strided[:, 1::2]])


def test_ssd_outputs() -> None:
    assert all_finite(ssd_like())
    outputs = ssd_like()
    outputs[2][0, 99] = np.nan
    assert not all_finite(outputs)


def test_engine_results_leave_the_check_to_the_monitor(tmp_path: Path) -> None:
    """The engine's result carries its finite check unrun (``finite`` None), whatever the
    outputs' size: the monitor's to run (on its thread, or at once when it holds too many
    outputs already, ``tally.HELD_BYTES``), with the answer all_finite gives. ``nbytes`` is
    what its arrays hold: from the model's declared shapes (``fixed_nbytes``, no per-frame
    look at the sizes), or from the arrays, when first asked, for dynamic ones."""
    import onnxruntime as ort
    from tests.support.onnx_models import constant_outputs_model

    from edgewatch.agent.inference.engine import EngineResult, InferenceEngine, fixed_nbytes
    from edgewatch.agent.inference.preprocess import Geometry
    from edgewatch.config.agent import parse_config

    def engine(name: str, outputs: dict[str, np.ndarray]) -> InferenceEngine:
        path = constant_outputs_model(tmp_path / name, outputs)
        return InferenceEngine(parse_config({"model": {
            "path": str(path), "adapter": "raw", "preprocess": {
                "width": 64, "height": 64, "layout": "NCHW", "dtype": "float32"}}}).model)

    image = np.zeros((64, 64, 3), np.uint8)
    ssd = {k: np.full(v, 0.5, np.float32) for k, v in
           {"num": (1,), "boxes": (1, 100, 4), "scores": (1, 100)}.items()}
    result = engine("small.onnx", ssd).infer_deferred(image)
    assert result.nbytes == (1 + 400 + 100) * 4
    assert result.finite is None and not result.nonfinite and result.finite is True
    ssd["scores"][0, 7] = np.nan
    result = engine("nan.onnx", ssd).infer_deferred(image)
    assert result.finite is None and result.nonfinite
    assert result.resolve().nonfinite and result.timings.inference_ms > 0
    large = engine("large.onnx", {"map": np.full((1, LARGE), np.inf, np.float32)})
    result = large.infer_deferred(image)
    assert result.finite is None and result.nbytes == LARGE * 4 and result.nonfinite

    def specs(model: Path | bytes) -> list:
        source = model if isinstance(model, bytes) else str(model)
        return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).get_outputs()

    assert fixed_nbytes(specs(tmp_path / "small.onnx")) == (1 + 400 + 100) * 4
    assert fixed_nbytes(specs(tmp_path / "large.onnx")) == LARGE * 4
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, "n"])
    y = helper.make_tensor_value_info("same", TensorProto.FLOAT, [1, "n"])
    dynamic = helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["images"], ["same"])], "dyn", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)])
    dynamic.ir_version = 8
    assert fixed_nbytes(specs(dynamic.SerializeToString())) is None
    arrays = [np.zeros((1, 7), np.float32), np.zeros(3, np.int64)]
    lazy = EngineResult(large.adapter, arrays, Geometry(64, 64, 64, 64), 0.0, 0.0, 0.0, -1)
    assert lazy.nbytes == 7 * 4 + 3 * 8
