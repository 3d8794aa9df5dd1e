"""What the collector's ingest counts: the figures its metrics export."""

from __future__ import annotations

import dataclasses
from collections import Counter

__all__ = ["IngestStats"]


@dataclasses.dataclass
class IngestStats:
    """Counters exported as metrics."""

    received: int = 0
    stored: Counter[str] = dataclasses.field(default_factory=Counter)
    duplicates: int = 0
    bad: Counter[str] = dataclasses.field(default_factory=Counter)
    """Refused messages by reason (only the keys of codec.REASONS; ``store``: quarantined)."""
    store_errors: int = 0
    """Failed store transactions (retried)."""
    unexpected: int = 0
    """Messages on which the ingest itself failed (a bug): logged, acknowledged, dropped."""
    connected: bool = False
    chunks: Counter[str] = dataclasses.field(default_factory=Counter)
    """Evidence chunks by outcome (stored, joined, duplicate, corrupt, invalid, ignored:
    no evidence directory)."""
