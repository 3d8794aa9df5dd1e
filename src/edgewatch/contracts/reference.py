"""The reference profile (``edgewatch.reference/1``): the file ``profile build`` writes, and the
retained message a device publishes once per reference on ``<device>/reference``, so the
collector holds the bins and reference histograms of every window it stores."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct, field

from edgewatch.contracts.bounds import (
    MAX_BINS,
    MAX_FEATURES,
    Count,
    Digest,
    Id,
    Name,
    Real,
    Text,
    Time,
)
from edgewatch.contracts.summary import Labels

SCHEMA = "edgewatch.reference/1"
Floats = Annotated[list[Real], Meta(max_length=MAX_BINS)]


class Histogram(Struct, forbid_unknown_fields=True):
    """Counts in bins: ``len(counts) == len(edges) + 1`` (under- and overflow bins)."""

    counts: Annotated[list[Count], Meta(max_length=MAX_BINS)]
    edges: Floats
    missing: Count = 0


class Moments(Struct, forbid_unknown_fields=True):
    count: Count = 0
    mean: Real = 0.0
    std: Real = 0.0
    m2: Real = 0.0
    min: Real = 0.0
    max: Real = 0.0


class NumericReference(Struct, forbid_unknown_fields=True):
    hist: Histogram
    moments: Moments
    per_frame: bool
    """True for one-value-per-frame features, False for per-detection ones (box_area)."""
    lag1_autocorr: Real


class AnomalyReference(Struct, forbid_unknown_fields=True):
    """The robust distance that scores frames (centre, scale, precision over ``features``)."""

    features: Annotated[list[Name], Meta(max_length=MAX_FEATURES)]
    center: Floats
    scale: Floats
    precision: Annotated[list[Floats], Meta(max_length=MAX_FEATURES)]
    threshold: Real


class Reference(Struct, forbid_unknown_fields=True, tag_field="schema", tag=SCHEMA):
    """Bin edges, histograms and statistics per feature, with provenance."""

    id: Id
    model_sha256: Digest
    model_name: Text
    adapter: Name
    feature_set_version: Id
    analysis_width: Count
    frames: Count
    source: Text
    created: Time
    numeric: Annotated[dict[Name, NumericReference], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    categorical: Annotated[dict[Name, Labels], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    anomaly: AnomalyReference | None = None
    frame_interval: Real = 0.0
    """Seconds between the reference's frames (0 when unknown)."""
    samples: Annotated[dict[Name, Count], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    """Samples per feature: its finite values, a frame's detections counted once (absent in
    profiles written before the field: the values, at most one per frame)."""
    excluded: Annotated[dict[Name, Text], Meta(max_length=MAX_FEATURES)] = field(
        default_factory=dict)
    """Features the reference could not learn (no finite values, too few samples), with why;
    they do not vote in drift verdicts."""
    device: Id = ""
    """Set when published by a device."""


PUSH_CHUNK_CHARS = 4000
"""Characters per element of a ``reference.push`` command's ``reference`` list (a command
argument string holds at most 4096)."""


def pack_reference(raw: bytes) -> list[str]:
    """A reference file's bytes as the ``reference`` argument of ``reference.push``: zlib,
    base64, in strings of ``PUSH_CHUNK_CHARS`` (a 26 KB profile: 3 of them, 9 KB)."""
    import base64
    import zlib

    text = base64.b64encode(zlib.compress(raw, 9)).decode("ascii")
    return [text[i:i + PUSH_CHUNK_CHARS] for i in range(0, len(text), PUSH_CHUNK_CHARS)]


def unpack_reference(chunks: list[str], max_bytes: int = 4 * 1024 * 1024) -> bytes:
    """The bytes ``pack_reference`` packed; ValueError when they are damaged or too large."""
    import base64
    import binascii
    import zlib

    try:
        packed = base64.b64decode("".join(chunks).encode("ascii"), validate=True)
        d = zlib.decompressobj()
        raw = d.decompress(packed, max_bytes)
    except (binascii.Error, UnicodeEncodeError, zlib.error) as exc:
        raise ValueError(f"reference payload is damaged: {exc}") from None
    if d.unconsumed_tail:
        raise ValueError(f"reference payload is larger than {max_bytes} bytes")
    return raw
