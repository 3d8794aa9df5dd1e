"""Rate-limited logging of repeating failures: one line first, then at most one summary line
per interval; infer_safely logs a model that fails on every frame that way."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.inference.failures import infer_safely
from edgewatch.agent.ratelimit import RepeatLimiter, first_line
from edgewatch.clock import ManualClock
from edgewatch.config.agent import parse_config
from support.onnx_models import always_failing_model

SUMMARY = "failed on {count} more frames in the last {seconds:.0f} s: {last}"


def test_first_occurrence_then_one_summary_per_interval() -> None:
    clock = ManualClock()
    limiter = RepeatLimiter(SUMMARY, 60.0, clock)
    assert limiter.hit(ValueError("boom\n  at line 3\n  at line 4")) == "boom"
    lines = []
    for i in range(300):  # 5 minutes of failures at 1 per second
        clock.advance(1.0)
        lines.append(limiter.hit(f"boom {i}\nmore"))
    logged = [x for x in lines if x is not None]
    assert logged == [f"failed on 60 more frames in the last 60 s: boom {i}"
                      for i in (59, 119, 179, 239, 299)]


def test_held_back_occurrences_are_flushed_once_the_interval_passed() -> None:
    clock = ManualClock()
    limiter = RepeatLimiter(SUMMARY, 60.0, clock)
    assert limiter.flush() is None
    assert limiter.hit("a") == "a"
    clock.advance(1.0)
    assert limiter.hit("b") is None
    assert limiter.flush() is None  # not before the interval
    clock.advance(59.0)
    assert limiter.flush() == "failed on 1 more frames in the last 60 s: b"
    assert limiter.flush() is None
    clock.advance(60.0)
    assert limiter.hit("c") == "c"  # quiet for a whole interval: a fresh first line


def test_first_line_of_empty_and_multi_line_messages() -> None:
    assert first_line(RuntimeError()) == "RuntimeError"
    assert first_line("\n  x  \ny") == "x"


def test_infer_safely_logs_a_failing_model_once_per_interval(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = always_failing_model(tmp_path / "fails.onnx")
    cfg = parse_config({"model": {"path": str(path), "adapter": "raw", "preprocess": {
        "width": 16, "height": 16, "layout": "NCHW", "dtype": "float32", "color": "RGB"}}})
    engine = InferenceEngine(cfg.model)
    clock = ManualClock()
    limiter = RepeatLimiter("inference failed on {count} more frames in the last "
                            "{seconds:.0f} s: {last}", 60.0, clock)
    image = np.zeros((16, 16, 3), np.uint8)
    with caplog.at_level(logging.WARNING, logger="edgewatch.agent.app"):
        for _ in range(250):  # 25 s at 10 fps, then 125 s more
            assert infer_safely(engine.infer, image, limiter) == (None, True)
            clock.advance(0.6)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3  # the first failure, then one summary per minute
    assert all("\n" not in line for line in lines)
    assert lines[0].startswith("inference failed: ")
    assert lines[1].startswith("inference failed on 100 more frames in the last 60 s: ")
    assert infer_safely(engine.infer, None, limiter) == (None, False)  # decode failure
