"""Checks a loaded model against the configuration.

Start-up (``InferenceEngine``) and ``edgewatch check-config`` run the same checks: the input
the pre-processing must feed (rank, batch, layout, dtype, size), the outputs the adapter
reads, and the number of classes against the labels file. A model the configuration cannot
feed is a one-line ``AdapterMismatch`` that names the key to change and what to set it to;
a labels file that does not fit the model is a warning (the agent still runs, with
misnamed classes). ``check-config`` also runs one black frame through the model (``probe``),
which catches the dimension errors onnxruntime only raises when it runs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from edgewatch.agent.inference.adapters import OutputAdapter, TensorSpec, make_adapter
from edgewatch.agent.inference.adapters.ssd import COCO_FIRST_NAME, COCO_MAX_ID
from edgewatch.agent.inference.preprocess import Preprocessor
from edgewatch.config.agent import ModelConfig, PreprocessConfig
from edgewatch.errors import AdapterMismatch, ConfigError

ORT_TYPES = {"uint8": "tensor(uint8)", "float32": "tensor(float)", "float16": "tensor(float16)"}
"""onnxruntime's name of the input type of each ``model.preprocess.dtype``."""
_DTYPES = {ort_type: dtype for dtype, ort_type in ORT_TYPES.items()}
_AXES = {"NHWC": (3, 1, 2), "NCHW": (1, 2, 3)}
"""Channel, height and width axis of each layout."""
PROBE_SIZE = (640, 480)
"""Width and height of the probe frame when the model is fed each frame at its own size."""


@dataclasses.dataclass(frozen=True)
class ModelReport:
    """The input the agent feeds and the outputs the adapter reads, as the model declares them."""

    input: TensorSpec
    outputs: list[TensorSpec]


def tensor_specs(args: Sequence[Any]) -> list[TensorSpec]:
    """Name, shape and type of onnxruntime's inputs or outputs (``NodeArg``s)."""
    return [TensorSpec(a.name, tuple(a.shape), a.type) for a in args]


def check_model(session: ort.InferenceSession, cfg: ModelConfig,
                adapter: OutputAdapter) -> ModelReport:
    """Raise AdapterMismatch when the configuration cannot feed the model or the adapter
    cannot read its outputs."""
    spec = select_input(tensor_specs(session.get_inputs()), cfg.input_name)
    check_input(spec, cfg.preprocess)
    outputs = tensor_specs(session.get_outputs())
    adapter.check(outputs)
    return ModelReport(spec, outputs)


def select_input(inputs: Sequence[TensorSpec], input_name: str) -> TensorSpec:
    """The input named by ``model.input_name``, or the first one."""
    names = [i.name for i in inputs]
    if not inputs:
        raise AdapterMismatch("the model has no inputs")
    if input_name and input_name not in names:
        raise AdapterMismatch(f"model.input_name '{input_name}' not among inputs {names}")
    return inputs[names.index(input_name)] if input_name else inputs[0]


def check_input(spec: TensorSpec, pre: PreprocessConfig) -> None:
    """Raise AdapterMismatch when the configured pre-processing cannot feed this input: one
    frame ([1, ...]), 3 channels on the configured layout's channel axis, the configured
    dtype and, where the model fixes them, the configured height and width."""
    where = f"model input '{spec.name}' {list(spec.shape)}"
    if len(spec.shape) != 4:
        raise AdapterMismatch(f"{where} {spec.type}: expected a 4-D image batch ({pre.layout})")
    batch = spec.fixed(0)
    if batch is not None and batch != 1:
        raise AdapterMismatch(
            f"{where}: fixed batch size {batch}: edgewatch feeds one frame at a time; export "
            "the model with batch 1 or a dynamic batch"
        )
    _check_layout(spec, pre, where)
    if spec.type != ORT_TYPES[pre.dtype]:
        fits = _DTYPES.get(spec.type)
        fix = (f'set model.preprocess.dtype = "{fits}"' if fits else
               "edgewatch feeds uint8, float32 or float16; export the model with one of them")
        raise AdapterMismatch(f"{where} {spec.type}: model.preprocess.dtype is '{pre.dtype}': "
                              f"{fix}")
    _, h_axis, w_axis = _AXES[pre.layout]
    sizes = {"height": (spec.fixed(h_axis), pre.height), "width": (spec.fixed(w_axis), pre.width)}
    wrong = [k for k, (fixed, size) in sizes.items() if fixed is not None and fixed != size]
    if not wrong:
        return
    key = wrong[0]
    other = "width" if key == "height" else "height"
    fixed, size = sizes[key]
    other_fixed, other_size = sizes[other]
    also = ""
    if other in wrong:
        also = f" (and {other} = {other_fixed})"
    elif other_fixed is None and other_size == 0:
        also = f" (and model.preprocess.{other}, which is set with it)"
    raise AdapterMismatch(f"{where}: fixed {key} {fixed}, but model.preprocess.{key} is {size}: "
                          f"set model.preprocess.{key} = {fixed}{also}")


def _check_layout(spec: TensorSpec, pre: PreprocessConfig, where: str) -> None:
    """The layout whose channel axis is fixed at 3 (or at 1: a greyscale model) is the
    model's; with both channel axes dynamic any layout may fit."""
    other = "NCHW" if pre.layout == "NHWC" else "NHWC"
    mine, theirs = spec.fixed(_AXES[pre.layout][0]), spec.fixed(_AXES[other][0])
    if mine == 3:
        return
    if theirs == 3:
        raise AdapterMismatch(f'{where} is {other}: set model.preprocess.layout = "{other}"')
    if mine == 1 or (mine is None and theirs == 1):
        layout = pre.layout if mine == 1 else other
        raise AdapterMismatch(
            f"{where}: has 1 channel on the {layout} channel axis (a greyscale model): "
            "edgewatch feeds 3-channel frames; export the model with 3 input channels"
        )
    if mine is not None:
        raise AdapterMismatch(
            f"{where}: has {mine} channels on the {pre.layout} channel axis and no layout "
            "has 3 channels: check model.preprocess.layout and model.input_name"
        )


# -- the number of classes -------------------------------------------------------------------


def model_classes(adapter: str, outputs: Sequence[TensorSpec]) -> tuple[int, str] | None:
    """How many classes the model's outputs say it has (class ids 0..n-1), and where that
    was read; None when the outputs do not say (dynamic dims, ssd, raw)."""
    if not outputs:
        return None
    out = outputs[0]
    shape = f"{adapter} output '{out.name}' {list(out.shape)}"
    if adapter == "yolo" and len(out.shape) == 3:
        a, b = out.fixed(1), out.fixed(2)  # the adapter: [1, 4+nc, N] when 4+nc < N
        if a is not None and (b is None or a < b):
            return a - 4, f"{shape}: {a} - 4 box values"
        if b is not None:
            return b - 5, f"{shape}: {b} - 5 box values and objectness"
    if adapter == "classification" and len(out.shape) >= 2:
        c = out.fixed(1)
        if c is not None:
            return c, shape
    return None


def read_label_lines(path: str) -> list[str]:
    """The labels file's lines, stripped, up to its last name (line k is id k + offset)."""
    try:
        with open(path, encoding="utf-8") as fh:
            names = [line.strip() for line in fh]
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"model.labels: cannot read {path} ({why})") from exc
    while names and not names[-1]:
        names.pop()
    return names


def label_warnings(cfg: ModelConfig, outputs: Sequence[TensorSpec]) -> list[str]:
    """Where the labels file and the model disagree on the classes, one line each naming
    model.labels / model.labels_offset. An unreadable labels file is a ConfigError."""
    if not cfg.labels or cfg.adapter == "raw":
        return []
    names = read_label_lines(cfg.labels)
    if not names:
        return [f"model.labels: {cfg.labels} holds no class names"]
    n, offset = len(names), cfg.resolved_labels_offset
    ids = f"ids {offset}..{offset + n - 1}"
    offset_is = (f"model.labels_offset = {offset}" if cfg.labels_offset is not None
                 else f"model.labels_offset unset: {offset} for {cfg.adapter}")
    if cfg.adapter == "ssd":
        if names[0] != COCO_FIRST_NAME:
            return []  # not the COCO list: the model does not say how many classes it has
        if offset != 1:
            return [f"model.labels: {n} names for class {ids} ({offset_is}), but the ssd "
                    f"adapter's COCO ids start at 1 ('{COCO_FIRST_NAME}'): set "
                    "model.labels_offset = 1 (or remove it)"]
        if offset + n - 1 < COCO_MAX_ID:
            return [f"model.labels: {n} names for class {ids} ({offset_is}), but TF COCO SSD "
                    f"ids go up to {COCO_MAX_ID} with gaps (id 12 is unused): use the "
                    f"{COCO_MAX_ID}-line COCO list with placeholders for the unused ids"]
        return []
    found = model_classes(cfg.adapter, outputs)
    if found is None:
        return []
    classes, source = found
    if offset + n == classes:
        return []
    if n == classes:
        fix = "set model.labels_offset = 0"
    elif n < classes:
        unnamed = "class 0 is" if classes - n == 1 else f"classes 0..{classes - n - 1} are"
        fix = (f"check model.labels (or set model.labels_offset = {classes - n} if {unnamed} "
               "background)")
    else:
        fix = "check model.labels and model.labels_offset"
    return [f"model.labels: {n} names for class {ids} ({offset_is}), but the model has "
            f"{classes} classes, ids 0..{classes - 1} ({source}): {fix}"]


# -- one frame through the model --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Probe:
    """What running one black frame gave: the outputs as run (concrete shapes), or a warning
    when a frame of an assumed size failed (the model is fed each frame at its own size)."""

    outputs: list[TensorSpec] | None
    warning: str | None = None


def _run_once(session: ort.InferenceSession, feed: dict[str, Any]) -> list[Any]:
    """One run that hands the memory it took back: the probe frame, of another size than
    the frames to come, would otherwise keep its share of onnxruntime's arena (about 3 MiB
    of peak RSS for SSDLite at 640x480 on 768x576 frames). A session without a CPU arena
    runs it as it is."""
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # the failure is reported by the caller, in one line
    shrink = ort.RunOptions()
    shrink.log_severity_level = 4
    shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    try:
        return list(session.run(None, feed, shrink))
    except Exception as exc:
        if "arena" not in str(exc):
            raise
    return list(session.run(None, feed, quiet))


def probe(session: ort.InferenceSession, cfg: ModelConfig, spec: TensorSpec,
          adapter: OutputAdapter) -> Probe:
    """Run a black frame of the configured size (``PROBE_SIZE`` when width and height are 0)
    through pre-processing, the session and the adapter's decoding. A failure at the
    configured size is an AdapterMismatch naming the keys."""
    pre = cfg.preprocess
    width, height = (pre.width, pre.height) if pre.width else PROBE_SIZE
    tensor, geometry = Preprocessor(pre)(np.zeros((height, width, 3), np.uint8))
    try:
        arrays = _run_once(session, {spec.name: tensor})
    except Exception as exc:  # onnxruntime raises several unrelated types
        why = _ort_reason(exc)
        if not pre.width:
            return Probe(None, (
                f"model input '{spec.name}' {list(spec.shape)}: a {width}x{height} test frame "
                f"fails in onnxruntime ({why}); model.preprocess.width and height are 0, so "
                "each frame goes in at its own size: set them to a size the model accepts"
            ))
        raise AdapterMismatch(
            f"model input '{spec.name}' {list(spec.shape)}: a {width}x{height} "
            f"{pre.layout} {pre.dtype} frame fails in onnxruntime ({why}): set "
            "model.preprocess.width, height, layout and dtype to what the model accepts"
        ) from exc
    names = [o.name for o in session.get_outputs()]
    try:
        adapter.decode(arrays, geometry)
    except Exception as exc:
        raise AdapterMismatch(
            f"adapter '{adapter.name}': cannot read the outputs of a test frame "
            f"({_first_line(exc)}): check model.adapter"
        ) from exc
    return Probe([TensorSpec(name, tuple(np.shape(a)), "") for name, a in zip(names, arrays)])


def check_configured_model(cfg: ModelConfig, session: ort.InferenceSession) -> list[str]:
    """Everything ``check-config`` checks about the loaded model: the start-up checks, a test
    frame through it, and its classes against the labels. Errors raise (AdapterMismatch,
    ConfigError for an unreadable labels file); the warnings are returned."""
    adapter = make_adapter(cfg.adapter, cfg.postprocess)
    report = check_model(session, cfg, adapter)
    ran = probe(session, cfg, report.input, adapter)
    warnings = [ran.warning] if ran.warning else []
    return warnings + label_warnings(cfg, ran.outputs or report.outputs)


def _ort_reason(exc: BaseException) -> str:
    """onnxruntime's reason for a failed run without its error code and source location:
    ``Reshape node: The input tensor cannot be reshaped ... Input shape:{...}, ...``."""
    text = _first_line(exc, limit=2000)
    node = re.search(r"while running (\S+) node", text)
    _, found, message = text.partition("Status Message:")
    if not found:
        return _first_line(exc)
    message = message.rsplit(" was false. ", 1)[-1].strip()
    return _first_line(ValueError(f"{node.group(1)} node: {message}" if node else message))


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."

