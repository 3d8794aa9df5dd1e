"""The inference thread's finite check of model outputs: right answer, no warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

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
