"""The onnxruntime session, its pre-processing and its output adapter, timed per frame."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edgewatch.agent.inference.adapters import OutputAdapter, make_adapter
from edgewatch.agent.inference.finite import all_finite
from edgewatch.agent.inference.model_check import (
    check_input,
    check_model,
    label_warnings,
    tensor_specs,
)
from edgewatch.agent.inference.preprocess import Geometry, Preprocessor
from edgewatch.agent.records import (
    DeferredResult,
    Image,
    InferenceResult,
    ModelOutput,
    Timings,
)
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
        fixed = fixed_nbytes(self.session.get_outputs())
        self._nbytes = -1 if fixed is None else fixed
        """The bytes of every frame's outputs when the model declares their shapes and
        types in full (no frame's outputs need their sizes looked at); -1 otherwise."""

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
        """Like ``infer``, but the adapter decodes only if the monitor measures the frame,
        and the finite check of the outputs is left to whoever first asks (the monitor:
        on its thread, or at once when it holds too many outputs already)."""
        clock = _clock
        t0 = clock()
        tensor, geometry = self.preprocess(image)
        t1 = clock()
        outputs = self.run(tensor)
        return EngineResult(self.adapter, outputs, geometry, t0, t1, clock(), self._nbytes)


_clock = time.perf_counter


class EngineResult(DeferredResult):
    """The engine's result of one frame, made with as little work as it can be: it runs
    on the inference thread right after ``session.run``, whose work leaves the processor's
    caches cold, where each object made and each lookup costs microseconds. It keeps what
    the engine had at hand (adapter, output arrays, geometry, clock readings); the timings,
    the decoding, the finite check (``finite`` None) and, for a model whose output shapes
    are not fixed, ``nbytes`` (``nbytes`` -1) are worked out when first asked."""

    __slots__ = ("_adapter", "_geometry", "_outputs", "_t0", "_t1", "_t2")

    def __init__(self, adapter: OutputAdapter, outputs: list[npt.NDArray[np.generic]],
                 geometry: Geometry, t0: float, t1: float, t2: float, nbytes: int) -> None:
        self._adapter = adapter
        self._outputs = outputs
        self._geometry = geometry
        self._t0, self._t1, self._t2 = t0, t1, t2
        self._timings = None
        self.finite = None
        self._nbytes = nbytes

    @property
    def nbytes(self) -> int:
        n = self._nbytes
        if n < 0:
            n = self._nbytes = outputs_nbytes(self._outputs)
        return n

    @property
    def timings(self) -> Timings:
        t = self._timings
        if t is None:
            t = self._timings = Timings((self._t1 - self._t0) * 1e3,
                                        (self._t2 - self._t1) * 1e3, 0.0)
        return t

    def _check(self) -> bool:
        return all_finite(self._outputs)

    def _output(self, nonfinite: bool) -> ModelOutput:
        if nonfinite:
            return self._adapter.empty()
        return self._adapter.decode(self._outputs, self._geometry)


_ITEMSIZE = {"float": 4, "double": 8, "float16": 2, "bfloat16": 2, "int64": 8, "uint64": 8,
             "int32": 4, "uint32": 4, "int16": 2, "uint16": 2, "int8": 1, "uint8": 1,
             "bool": 1}
"""Bytes per value of the ONNX tensor types (``tensor(float)``, ...) a model may return."""


def outputs_nbytes(outputs: Sequence[npt.NDArray[np.generic]]) -> int:
    """The bytes a frame's output arrays hold."""
    n = 0
    for o in outputs:  # a loop, not sum(): this runs for every frame of such a model
        n += o.nbytes
    return n


def fixed_nbytes(specs: Sequence[Any]) -> int | None:
    """The bytes of a frame's outputs (``session.get_outputs()``) when every one has a fixed
    shape and a known tensor type; None otherwise (they are counted frame by frame)."""
    total = 0
    for spec in specs:
        itemsize = _ITEMSIZE.get(str(spec.type).removeprefix("tensor(").removesuffix(")"))
        dims = [d for d in spec.shape if isinstance(d, int) and d >= 0]
        if itemsize is None or len(dims) != len(spec.shape):
            return None
        total += math.prod(dims) * itemsize
    return total


def defer_decoding(adapter: OutputAdapter, outputs: Sequence[npt.NDArray[np.generic]],
                   geometry: Geometry, timings: Timings) -> DeferredResult:
    """The adapter's decoding of an application's outputs (``AppMonitor``), to run later;
    its empty output when any float tensor holds NaN or Inf. The finite check runs now, so
    the frame is counted whatever becomes of the arrays (the application may reuse them;
    the engine's own results, whose arrays nobody reuses, are an ``EngineResult``)."""
    return DeferredResult(partial(adapter.decode, outputs, geometry), timings,
                          all_finite(outputs), adapter.empty)
