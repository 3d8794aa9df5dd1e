"""The onnxruntime session, its pre-processing and its output adapter, timed per frame."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edgewatch.agent.inference.adapters import OutputAdapter, make_adapter
from edgewatch.agent.inference.model_check import (
    check_input,
    check_model,
    label_warnings,
    tensor_specs,
)
from edgewatch.agent.inference.preprocess import Geometry, Preprocessor
from edgewatch.agent.records import DeferredResult, Image, InferenceResult, Timings
from edgewatch.config.agent import ModelConfig
from edgewatch.contracts.digest import sha256
from edgewatch.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

__all__ = ["InferenceEngine", "check_input", "defer_decoding", "file_sha256", "load_session",
           "tensor_specs"]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def session_options(cfg: ModelConfig) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # failures reach edgewatch as exceptions: one line each
    if cfg.intra_op_threads:
        opts.intra_op_num_threads = cfg.intra_op_threads
    opts.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if cfg.allow_spinning else "0"
    )
    return opts


def load_session(cfg: ModelConfig) -> ort.InferenceSession:
    """Open the model, translating every failure into a one-line ModelError."""
    path = Path(cfg.path)
    if not cfg.path:
        raise ModelError("model.path is not set")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        return ort.InferenceSession(str(path), session_options(cfg), providers=cfg.providers)
    except Exception as exc:  # onnxruntime raises several unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "INVALID_PROTOBUF" in first:
            first = "not an ONNX model (protobuf parsing failed)"
        raise ModelError(f"cannot load model {path}: {first}") from exc


class InferenceEngine:
    """Runs one frame through pre-processing, the session and the adapter, with timings."""

    def __init__(self, cfg: ModelConfig, session: ort.InferenceSession | None = None) -> None:
        self.cfg = cfg
        self.session = session if session is not None else load_session(cfg)
        self.preprocess = Preprocessor(cfg.preprocess)
        self.adapter: OutputAdapter = make_adapter(cfg.adapter, cfg.postprocess)
        report = check_model(self.session, cfg, self.adapter)  # AdapterMismatch now
        self.input, self.outputs = report.input, report.outputs
        try:
            self.warnings = label_warnings(cfg, self.outputs)
        except ConfigError:  # an unreadable labels file fails where the labels are loaded
            self.warnings = []
        for warning in self.warnings:
            log.warning("%s", warning)
        self.model_sha256 = file_sha256(cfg.path) if cfg.path else ""
        self._quiet = ort.RunOptions()
        self._quiet.log_severity_level = 4  # onnxruntime's own multi-line error log: off
        # what every frame's result needs, looked up once (infer_deferred runs right after
        # session.run, whose work leaves the processor's caches cold: each lookup costs)
        self._decode, self._empty = self.adapter.decode, self.adapter.empty
        self._finite = fixed_finite_check(self.session.get_outputs())
        """The finite check of this session's outputs when every one has a fixed shape of at
        most SMALL_TENSOR values (it can always wait for the monitor thread), else None."""

    @property
    def model_name(self) -> str:
        return Path(self.cfg.path).name

    def run(self, tensor: npt.NDArray[np.generic]) -> list[npt.NDArray[np.generic]]:
        try:
            return list(self.session.run(None, {self.input.name: tensor}, self._quiet))
        except Exception as exc:
            raise ModelError(f"inference failed: {str(exc).strip()[:200]}") from exc

    def infer(self, image: Image) -> InferenceResult:
        """Pre-process, run and decode one frame, with the time of each stage."""
        return self.infer_deferred(image).resolve()

    def infer_deferred(self, image: Image) -> DeferredResult:
        """Like ``infer``, but the adapter decodes only if the monitor measures the frame."""
        t0 = time.perf_counter()
        tensor, geometry = self.preprocess(image)
        t1 = time.perf_counter()
        outputs = self.run(tensor)
        t2 = time.perf_counter()
        timings = Timings((t1 - t0) * 1e3, (t2 - t1) * 1e3, 0.0)
        if self._finite is not None:  # defer_decoding's check_now=False, without its loop
            return DeferredResult(partial(self._decode, outputs, geometry), timings,
                                  partial(self._finite, outputs), self._empty)
        return defer_decoding(self.adapter, outputs, geometry, timings, check_now=False)


_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                "tensor(float16)": np.float16}


def fixed_finite_check(outputs: Sequence[Any]) -> Callable[[Sequence[Any]], bool] | None:
    """``all_finite`` for the outputs of one session (``session.get_outputs()``) when each
    has a fixed shape of at most SMALL_TENSOR values: it sums only the float ones, by index,
    with their vectors of ones at hand. None when a shape is not fixed or larger, or a type
    unknown here (bfloat16...): ``all_finite`` then."""
    summed: list[tuple[int, npt.NDArray[np.generic]]] = []
    for i, spec in enumerate(outputs):
        dims = [d for d in spec.shape if isinstance(d, int) and d >= 0]
        size = math.prod(dims)
        if len(dims) != len(spec.shape) or size > SMALL_TENSOR:
            return None
        if spec.type in _FLOAT_TYPES:
            summed.append((i, np.ones(size, _FLOAT_TYPES[spec.type])))
        elif "float" in spec.type:
            return None
    vdot, isfinite = _vdot, math.isfinite

    def check(arrays: Sequence[Any]) -> bool:
        try:
            for i, ones in summed:
                o = arrays[i]
                if not isfinite(vdot(o, ones)) and not np.isfinite(o).all():
                    return False
        except (ValueError, TypeError, IndexError):  # not the declared shapes or types
            return all_finite(arrays)
        return True

    return check


def defer_decoding(adapter: OutputAdapter, outputs: Sequence[npt.NDArray[np.generic]],
                   geometry: Geometry, timings: Timings, *,
                   check_now: bool = True) -> DeferredResult:
    """The adapter's decoding of these outputs, to run later; its empty output when any
    float tensor holds NaN or Inf.

    ``check_now``: the finite check runs now, so the frame is counted whatever becomes of
    the arrays. Otherwise (outputs nobody writes to again, as the engine's, new from every
    ``session.run``) it runs when first asked (``DeferredResult.nonfinite``): the monitor
    asks on its own thread, so the inference thread does not pay for it; outputs with a
    tensor above :data:`SMALL_TENSOR` values are checked now all the same (not kept a while
    for it)."""
    decode = partial(adapter.decode, outputs, geometry)
    if not check_now:
        for o in outputs:  # a loop, not any(): this runs for every frame
            if o.size > SMALL_TENSOR:
                break
        else:
            return DeferredResult(decode, timings, partial(all_finite, outputs), adapter.empty)
    return DeferredResult(decode, timings, all_finite(outputs), adapter.empty)


def all_finite(outputs: Sequence[npt.NDArray[np.generic]]) -> bool:
    """No float output tensor holds NaN or Inf.

    Runs on the inference thread for every frame, so it costs one reduction per tensor: a
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
