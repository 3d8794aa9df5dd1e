"""Any model: edgewatch only keeps statistics of the output tensors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edgewatch.agent.inference.adapters.base import OutputAdapter, TensorSpec
from edgewatch.agent.inference.preprocess import Geometry
from edgewatch.agent.records import RawOutputs


class RawAdapter(OutputAdapter):
    name = "raw"
    _names: tuple[str, ...] = ()

    def check(self, outputs: Sequence[TensorSpec]) -> None:
        if not outputs:
            raise self.mismatch("the model has no outputs", outputs)
        self._names = tuple(o.name for o in outputs)

    def decode(
        self, outputs: Sequence[npt.NDArray[np.generic]], geometry: Geometry
    ) -> RawOutputs:
        names = self._names or tuple(f"output{i}" for i in range(len(outputs)))
        return RawOutputs(dict(zip(names, outputs)))

    def empty(self) -> RawOutputs:
        return RawOutputs({})
