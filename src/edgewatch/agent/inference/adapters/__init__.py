"""Output adapters: how each family of models' output tensors is read."""

from __future__ import annotations

from edgewatch.agent.inference.adapters.base import OutputAdapter, TensorSpec
from edgewatch.agent.inference.adapters.classification import ClassificationAdapter
from edgewatch.agent.inference.adapters.raw import RawAdapter
from edgewatch.agent.inference.adapters.ssd import SsdAdapter
from edgewatch.agent.inference.adapters.yolo import YoloAdapter
from edgewatch.config.agent import PostprocessConfig

ADAPTERS: dict[str, type[OutputAdapter]] = {
    "ssd": SsdAdapter,
    "yolo": YoloAdapter,
    "classification": ClassificationAdapter,
    "raw": RawAdapter,
}


def make_adapter(name: str, post: PostprocessConfig) -> OutputAdapter:
    """The adapter registered under ``name``."""
    return ADAPTERS[name](post)


__all__ = ["ADAPTERS", "OutputAdapter", "TensorSpec", "make_adapter"]
