"""The interface every output adapter implements."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edgewatch.agent.inference.preprocess import Geometry
from edgewatch.agent.records import ModelOutput
from edgewatch.config.agent import PostprocessConfig
from edgewatch.errors import AdapterMismatch

Dim = int | str | None


@dataclasses.dataclass(frozen=True, slots=True)
class TensorSpec:
    """Name, shape (ints for fixed dims, str or None for dynamic ones) and type of a tensor."""

    name: str
    shape: tuple[Dim, ...]
    type: str

    def fixed(self, axis: int) -> int | None:
        dim = self.shape[axis]
        return dim if isinstance(dim, int) and dim > 0 else None


class OutputAdapter(abc.ABC):
    """Checks a model's signature at load time and decodes its outputs for each frame."""

    name: str = ""

    def __init__(self, post: PostprocessConfig) -> None:
        self.post = post
        self.floor = max(0.0, post.score_threshold - post.near_band)

    @abc.abstractmethod
    def check(self, outputs: Sequence[TensorSpec]) -> None:
        """Raise AdapterMismatch when the outputs do not fit this adapter."""

    @abc.abstractmethod
    def decode(
        self, outputs: Sequence[npt.NDArray[np.generic]], geometry: Geometry
    ) -> ModelOutput:
        """Turn one frame's output tensors into a typed model output."""

    @abc.abstractmethod
    def empty(self) -> ModelOutput:
        """The output recorded for a frame whose tensors held NaN/Inf or could not be decoded."""

    def mismatch(self, message: str, outputs: Sequence[TensorSpec]) -> AdapterMismatch:
        shapes = ", ".join(f"{o.name} {list(o.shape)}" for o in outputs)
        return AdapterMismatch(f"adapter '{self.name}': {message} (model outputs: {shapes})")
