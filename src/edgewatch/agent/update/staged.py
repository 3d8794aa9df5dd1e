"""A model update that has arrived complete and verified, staged beside the running model."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class StagedUpdate:
    """What the transfer hands to the update lifecycle: files in ``directory`` (never the
    running model's), each verified against the sha256 the operator's push announced."""

    update_id: str
    """The push's id (operators see it in ``edgewatch model status``)."""
    directory: Path
    model: Path
    model_sha256: str
    reference: Path | None = None
    """A reference profile built for the new model (None: keep profiling rules: see the
    lifecycle's docs)."""
    labels: Path | None = None
    signed: bool = False
    """True when a configured signature key verified the model."""
    received: float = 0.0
    """When the last byte arrived (device clock)."""
