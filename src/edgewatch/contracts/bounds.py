"""Bounded field types: every integer, float, string and collection a message may carry.

Decoding a message into a contract type checks these bounds, so nothing past the decode
boundary can hold a seq that does not fit a database column, a number that cannot be
exported, or a collection large enough to exhaust memory. No string may hold a NUL
character (PostgreSQL's text cannot): :func:`edgewatch.contracts.codec.decode_as` checks
that once per message, on the canonical JSON it writes anyway, rather than with a pattern
on every string (a Python call per string: half the cost of decoding a summary).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

MAX_SEQ = 2**63 - 1
"""Sequence numbers fit a signed 64-bit column."""
MAX_COUNT = 2**53
"""Counts stay exact as IEEE doubles (Prometheus, JSON readers)."""
MAX_ABS_FLOAT = 1e300
"""Floats are finite and leave headroom for sums and unit conversions."""

Seq = Annotated[int, Meta(ge=0, le=MAX_SEQ)]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
SmallInt = Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)]
Real = Annotated[float, Meta(ge=-MAX_ABS_FLOAT, le=MAX_ABS_FLOAT)]
"""A finite float (NaN, infinities and absurd magnitudes are refused)."""
Time = Annotated[float, Meta(ge=0.0, le=1e11)]
"""Seconds since the epoch (up to the year 5138)."""
Unit = Annotated[float, Meta(ge=0.0, le=1.0)]
Name = Annotated[str, Meta(min_length=1, max_length=128)]
"""Identifiers: feature, label, stage, fault and rule names."""
Id = Annotated[str, Meta(max_length=128)]
"""Ids that may be empty (boot ids, reference ids, alert ids)."""
Text = Annotated[str, Meta(max_length=4096)]
"""Sentences for people: messages, reasons, errors."""
Digest = Annotated[str, Meta(max_length=64, pattern=r"^[0-9a-f]*\Z")]
"""A hexadecimal digest (sha256), possibly empty."""

MAX_FEATURES = 256
MAX_BINS = 1024
MAX_LABELS = 4096
MAX_SKETCH_BUCKETS = 4096
MAX_REASONS = 64
MAX_MERGED = 100_000
MAX_ITEMS = 256
"""Small maps: quality faults, latency stages, sensors, arguments."""
