"""A model that fails on a frame: counted (the monitor's ``inference_error`` fault), not
raised, and logged without flooding the log: the first line of the first failure, then at
most one summary line a minute while failures go on, and one when inference works again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from edgewatch.agent.ratelimit import RepeatLimiter
from edgewatch.agent.records import Image
from edgewatch.errors import ModelError

log = logging.getLogger(__name__)

__all__ = ["INFERENCE_FAILURES", "infer_safely"]

R = TypeVar("R")


INFERENCE_FAILURES = RepeatLimiter(
    "inference failed on {count} more frames in the last {seconds:.0f} s: {last}", 60.0)
"""How ``infer_safely`` logs failures: one line, then at most one summary line a minute."""


def infer_safely(infer: Callable[[Image], R], image: Image | None,
                 failures: RepeatLimiter | None = None) -> tuple[R | None, bool]:
    """``infer(image)``, and whether it failed: an onnxruntime failure on one frame is
    counted (the monitor's ``inference_error`` fault), not raised, and logged through
    ``failures`` (default ``INFERENCE_FAILURES``): the first line of the first failure's
    message, then at most one summary line per minute while failures go on. No image (a
    decode failure): (None, False)."""
    if image is None:
        return None, False
    limiter = INFERENCE_FAILURES if failures is None else failures
    try:
        result = infer(image)
    except ModelError as exc:
        line = limiter.hit(exc)
        if line is not None:
            log.warning("%s", line)
        return None, True
    if limiter.held:  # failures held back: their summary, once the interval has passed
        line = limiter.flush()
        if line is not None:
            log.warning("%s (inference works again)", line)
    return result, False
