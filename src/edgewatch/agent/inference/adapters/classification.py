"""Image classifiers: one output of logits or probabilities, ``[1, C]`` (or ``[1, C, 1, 1]``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edgewatch.agent.inference.adapters.base import OutputAdapter, TensorSpec
from edgewatch.agent.inference.preprocess import Geometry
from edgewatch.agent.records import Classification


class ClassificationAdapter(OutputAdapter):
    name = "classification"

    def check(self, outputs: Sequence[TensorSpec]) -> None:
        if len(outputs) != 1:
            raise self.mismatch("expected exactly one output of class scores", outputs)
        shape = outputs[0].shape
        extra = [d for d in shape[2:] if d != 1]
        if len(shape) < 2 or extra:
            raise self.mismatch("expected an output shaped [1, C]", outputs)
        c = outputs[0].fixed(1)
        if c is not None and c < 2:
            raise self.mismatch("need at least 2 classes", outputs)

    def decode(
        self, outputs: Sequence[npt.NDArray[np.generic]], geometry: Geometry
    ) -> Classification:
        x = np.asarray(outputs[0], np.float64).reshape(-1)
        mode = self.post.softmax
        is_prob = bool(np.all(x >= 0.0) and np.all(x <= 1.0) and abs(x.sum() - 1.0) < 1e-3)
        if mode == "always" or (mode == "auto" and not is_prob):
            z = np.exp(x - x.max())
            x = z / z.sum()
        return Classification(x.astype(np.float32))

    def empty(self) -> Classification:
        return Classification(np.zeros(0, np.float32))
