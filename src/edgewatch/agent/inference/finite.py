"""The finite check of model outputs: no float tensor holds NaN or Inf.

Runs for every frame: on the monitor thread for the engine's results (``EngineResult``),
or on the inference thread when the monitor holds too many outputs waiting for it already
(``window.tally.HELD_BYTES``), and for an application's own outputs (``AppMonitor``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["all_finite"]


def all_finite(outputs: Sequence[npt.NDArray[np.generic]]) -> bool:
    """No float output tensor holds NaN or Inf.

    Runs for every frame, so it costs one reduction per tensor: a sum is finite when every
    value is (NaN and Inf propagate); only a non-finite sum (which finite values can also
    give, by overflow) is checked value by value. A float32 or float64 tensor's sum is that
    of its squares, its dot product with itself (``np.vdot``: one BLAS call, one pass over
    the values, and, unlike a ufunc, no check of the floating-point flags, so no
    ``np.errstate`` is needed to stay silent on NaN or overflow, and the call costs a
    fraction of a reduction's set-up); any other float type's (float16) is ``ndarray.sum``
    under ``np.errstate``."""
    for o in outputs:
        dtype = o.dtype
        if dtype.kind != "f":
            continue
        if dtype.char in "fd":
            total = _vdot(o, o)
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # no warning for NaN/overflow
                total = o.sum()
        if not math.isfinite(total) and not np.isfinite(o).all():
            return False
    return True


_vdot: Callable[[Any, Any], Any] = np.vdot
