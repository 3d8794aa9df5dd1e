"""Per-frame value types passed along the pipeline (frames, model outputs, timings)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(slots=True)
class Frame:
    """One frame from a source; ``image`` is BGR uint8 (H, W, 3), or None when decoding failed."""

    index: int
    timestamp: float
    image: Image | None


@dataclasses.dataclass(slots=True)
class Detections:
    """Detector output for one frame, after NMS.

    Holds every candidate scoring at least ``floor`` (the operating threshold minus the
    near-threshold band) so that near-threshold scores can be measured; ``boxes`` are
    (x1, y1, x2, y2) normalised to the original frame (0..1).
    """

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    classes: npt.NDArray[np.int64]
    best_score: float

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), 0.0
        )

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep], self.best_score)


@dataclasses.dataclass(slots=True)
class Classification:
    """Class probabilities for one frame (they sum to 1)."""

    probs: npt.NDArray[np.float32]


@dataclasses.dataclass(slots=True)
class RawOutputs:
    """Output tensors of a model edgewatch does not interpret, by output name."""

    tensors: dict[str, npt.NDArray[np.generic]]


ModelOutput = Detections | Classification | RawOutputs


@dataclasses.dataclass(slots=True)
class Timings:
    """Milliseconds spent in each stage of one inference."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0


@dataclasses.dataclass(slots=True)
class InferenceResult:
    """What the inference stage hands to the monitor for one frame."""

    output: ModelOutput
    timings: Timings
    nonfinite: bool = False
    """True when any output tensor held NaN or Inf (the output is then treated as empty)."""


class DeferredResult:
    """An InferenceResult whose outputs are decoded only if the monitor measures the frame.

    ``decode`` gives the output, ``empty`` (if given) the one that stands for non-finite
    outputs (the adapter's empty one); ``finite`` tells whether every float output tensor is
    finite: known, or the check to run when first asked (:attr:`nonfinite`), which the
    monitor does on its own thread. The monitor thread calls ``resolve`` for a sampled
    frame, so the output arrays must stay as they are; ``Monitor.observe(...,
    resolve_now=True)`` resolves on the caller's thread instead, before returning, for
    callers that reuse their arrays. A zero ``postprocess_ms`` is filled in with the time
    the decoding took. The engine's own results are an ``EngineResult`` (cheaper to make).
    """

    __slots__ = ("_decode", "_empty", "_nbytes", "_timings", "finite")

    def __init__(self, decode: Callable[[], ModelOutput], timings: Timings,
                 finite: bool | Callable[[], bool] = True,
                 empty: Callable[[], ModelOutput] | None = None, nbytes: int = 0) -> None:
        self._nbytes = nbytes
        self._decode = decode
        self._timings: Timings | None = timings
        self.finite: bool | Callable[[], bool] | None = finite
        """True or False once known; otherwise the check is still to run (None: the
        subclass's own, ``EngineResult``)."""
        self._empty = empty

    @property
    def timings(self) -> Timings:
        assert self._timings is not None
        return self._timings

    @property
    def nbytes(self) -> int:
        """What the output arrays it keeps hold, in bytes (the monitor keeps a bounded
        number of bytes of frames waiting to be counted or checked)."""
        return self._nbytes

    @property
    def nonfinite(self) -> bool:
        """True when any float output tensor holds NaN or Inf (checked once, when first
        asked)."""
        finite = self.finite
        if not isinstance(finite, bool):
            finite = self.finite = bool(self._check())
        return not finite

    def _check(self) -> bool:
        assert callable(self.finite)
        return self.finite()

    def _output(self, nonfinite: bool) -> ModelOutput:
        if nonfinite and self._empty is not None:
            return self._empty()
        return self._decode()

    def resolve(self) -> InferenceResult:
        t0 = time.perf_counter()
        nonfinite = self.nonfinite
        output = self._output(nonfinite)
        t = self.timings
        if t.postprocess_ms == 0.0:
            t = Timings(t.preprocess_ms, t.inference_ms, (time.perf_counter() - t0) * 1e3)
        return InferenceResult(output, t, nonfinite)


@dataclasses.dataclass(frozen=True, slots=True)
class SignalChange:
    """The no-signal fast path: the picture went away (or came back), reported from the
    monitor thread as soon as it is known, before the window closes.

    ``fault`` names the cause: ``black``, ``frozen``, ``decode_error``, ``inference_error``
    or ``no_frames`` (a live source that delivers nothing)."""

    lost: bool
    """True: no usable signal; False: the signal is back."""
    fault: str
    since: float
    """Footage time (seconds since the epoch) at which the fault began."""
    at: float
    """Footage time of this report."""
