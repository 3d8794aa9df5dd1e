"""The finite check of model outputs: no float tensor holds NaN or Inf.

Runs for every frame: on the monitor thread for the engine's results (``EngineResult``), or
on the inference thread for outputs too large to be kept until then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["SMALL_TENSOR", "all_finite", "checked_if_large"]


def all_finite(outputs: Sequence[npt.NDArray[np.generic]]) -> bool:
    """No float output tensor holds NaN or Inf.

    Runs for every frame, so it costs one reduction per tensor: a
    sum is finite when every value is (NaN and Inf propagate); only a non-finite sum (which
    finite values can also give, by overflow) is checked value by value. A small tensor's
    sum is its dot product with ones (``np.vdot``: a BLAS call that, unlike a ufunc, checks
    no floating-point flags, so it needs no ``np.errstate`` to stay silent on NaN or
    overflow, and that costs a fraction of a reduction's set-up); a large one's is
    ``ndarray.sum`` under ``np.errstate``, where the set-up no longer matters."""
    for o in outputs:
        dtype = o.dtype
        if dtype.kind != "f":
            continue
        size = o.size
        if size <= SMALL_TENSOR:
            ones = _ONES.get((size, dtype))
            if ones is None:
                ones = _ONES[size, dtype] = np.ones(size, dtype)
            total = _vdot(o, ones)
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # no warning for NaN/overflow
                total = o.sum()
        if not math.isfinite(total) and not np.isfinite(o).all():
            return False
    return True


SMALL_TENSOR = 4096
"""Tensors up to this many values are summed by ``np.vdot`` with a vector of ones."""
_ONES: dict[tuple[int, np.dtype[np.generic]], npt.NDArray[np.generic]] = {}
"""Vectors of ones by size and dtype, for the tensors a model returns (a few sizes)."""
_vdot: Callable[[Any, Any], Any] = np.vdot


def checked_if_large(outputs: Sequence[npt.NDArray[np.generic]]) -> bool | None:
    """``all_finite(outputs)`` when a tensor holds more than SMALL_TENSOR values (checked
    now: such outputs are not kept for a later check); None when all are small (the check
    can wait for the monitor thread)."""
    for o in outputs:  # a loop, not any(): this runs for every frame
        if o.size > SMALL_TENSOR:
            return all_finite(outputs)
    return None
