"""The inference thread's finite check of model outputs: right answer, no warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgewatch.agent.inference.engine import SMALL_TENSOR, all_finite


def ssd_like(fill: float = 0.5) -> list[np.ndarray]:
    return [np.array([3.0], np.float32), np.full((1, 100, 4), fill, np.float32),
            np.full((1, 100), fill, np.float32), np.full((1, 100), 1.0, np.float32)]


@pytest.mark.parametrize("shape", [(1, 100, 4), (1, SMALL_TENSOR + 1)])
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
        assert all_finite([np.full(SMALL_TENSOR + 1, 1e308)])
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


def test_a_sessions_fixed_small_outputs_get_their_own_check(tmp_path: Path) -> None:
    """``fixed_finite_check`` from a real session's output specs agrees with all_finite,
    sums only the float outputs, and falls back to all_finite when the arrays are not the
    declared ones; dynamic or large outputs get no such check."""
    import onnxruntime as ort
    from tests.support.onnx_models import constant_outputs_model

    from edgewatch.agent.inference.engine import fixed_finite_check

    shapes = {"num": (1,), "boxes": (1, 100, 4), "scores": (1, 100), "classes": (1, 100)}
    path = constant_outputs_model(tmp_path / "ssd.onnx",
                                  {k: np.zeros(v, np.float32) for k, v in shapes.items()})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check = fixed_finite_check(session.get_outputs())
    assert check is not None
    outputs = session.run(None, {"images": np.zeros((1, 3, 64, 64), np.float32)})
    assert check(outputs) and all_finite(outputs)
    for i, bad in enumerate([np.nan, np.inf, -np.inf, np.nan]):
        broken = [o.copy() for o in outputs]
        broken[i].flat[-1] = bad
        assert not check(broken) and not all_finite(broken)
    shifted = [np.ones(7, np.float32), *outputs[1:]]  # not the declared shape of output 0
    assert check(shifted)
    shifted[0][3] = np.nan
    assert not check(shifted)

    large = constant_outputs_model(tmp_path / "large.onnx",
                                   {"map": np.zeros((1, SMALL_TENSOR + 1), np.float32)})
    assert fixed_finite_check(ort.InferenceSession(
        str(large), providers=["CPUExecutionProvider"]).get_outputs()) is None
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, "n"])
    y = helper.make_tensor_value_info("same", TensorProto.FLOAT, [1, "n"])
    dynamic = helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["images"], ["same"])], "dyn", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)])
    dynamic.ir_version = 8
    session = ort.InferenceSession(dynamic.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    assert fixed_finite_check(session.get_outputs()) is None
