"""What every device message carries besides its body: who sent it, in which boot, in which
order, and what the device dropped on purpose since the last report."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct, field

from edgewatch.contracts.bounds import MAX_ITEMS, Count, Name

LossCounts = Annotated[dict[Name, Count], Meta(max_length=MAX_ITEMS)]


class Loss(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Messages the outbox merged or dropped on purpose since its last report, by kind."""

    compacted: Count = 0
    """Summaries merged into earlier ones (nothing lost: ``merged_seqs`` lists them)."""
    evicted: LossCounts = field(default_factory=dict)
    """Deleted to keep the outbox under its caps (age, size)."""
    dropped: LossCounts = field(default_factory=dict)
    """Never stored (the disk refused writes and memory was full)."""
    rejected: LossCounts = field(default_factory=dict)
    """Refused by the broker."""
