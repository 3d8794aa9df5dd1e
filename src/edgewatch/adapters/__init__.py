"""Output adapters: how each family of models' output tensors is read."""

from __future__ import annotations

from edgewatch.adapters.base import OutputAdapter, TensorSpec
from edgewatch.adapters.classification import ClassificationAdapter
from edgewatch.adapters.raw import RawAdapter
from edgewatch.adapters.ssd import SsdAdapter
from edgewatch.adapters.yolo import YoloAdapter
from edgewatch.config import PostprocessConfig

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
