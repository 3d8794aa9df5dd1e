"""Evidence retrieval over MQTT: what a device lists (``evidence.list`` and ``evidence.send``
results) and the chunks it sends (``edgewatch.evidence_chunk/1`` on
``<root>/<fleet>/<device>/evidence``), see docs/evidence.md and docs/mqtt.md."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from edgewatch.contracts.bounds import MAX_ITEMS, Count, Digest, Id, Name, Real, Seq, Time

CHUNK_SCHEMA = "edgewatch.evidence_chunk/1"
MAX_CHUNK_BYTES = 256 * 1024
"""Largest chunk payload (``evidence.chunk_kib`` is at most 256)."""
MAX_FRAMES = 500
"""Frames one ``evidence.list`` or ``evidence.send`` result describes at most."""

FileName = Annotated[str, Meta(min_length=1, max_length=160,
                               pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")]
"""A file of a frame: ``<frame id>.jpg`` or ``<frame id>.json`` (a plain name, no path)."""
FrameId = Annotated[str, Meta(min_length=1, max_length=128,
                              pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")]
"""A frame id (``<ms>-<index>-<hex>``): a plain name, usable as a file and folder name."""


class EvidenceTrigger(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Why a frame was kept (one row of the device's ``triggers`` index)."""

    kind: Name
    """``alert``, ``near_threshold`` or ``baseline``."""
    alert_id: Id = ""
    rule: Id = ""
    phase: Id = ""
    """``pre`` or ``post`` for alert frames."""


class EvidenceFile(Struct, forbid_unknown_fields=True):
    """One file of a frame, as the device has it when it answers."""

    name: FileName
    bytes: Count
    sha256: Digest
    chunks: Count
    """How many chunks of the device's ``evidence.chunk_kib`` it travels in."""


class EvidenceFrame(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One stored evidence frame: its id, when, why, and its files (image and sidecar)."""

    id: FrameId
    captured: Time
    """Device clock at capture."""
    time: Real | None = None
    """The frame's footage timestamp."""
    triggers: Annotated[list[EvidenceTrigger], Meta(max_length=MAX_ITEMS)] = []
    files: Annotated[list[EvidenceFile], Meta(max_length=4)] = []


FrameList = Annotated[list[EvidenceFrame], Meta(max_length=MAX_FRAMES)]


class EvidenceChunk(Struct, forbid_unknown_fields=True, omit_defaults=True,
                    tag_field="schema", tag=CHUNK_SCHEMA):
    """One chunk of one evidence file (QoS 1, not retained, lowest priority: sent only while
    the device's outbox has nothing to publish, at most ``evidence.send_kib_per_s``). The
    collector keeps chunks by device, frame, file and index, and joins a file when it has
    all ``count`` of them and their bytes hash to ``sha256``."""

    frame: FrameId
    file: FileName
    index: Count
    """Chunk number, from 0."""
    count: Count
    """Chunks of the file."""
    size: Count
    """Bytes of the whole file."""
    sha256: Digest
    """SHA-256 of the whole file as the device read it for this chunk."""
    data: Annotated[bytes, Meta(max_length=MAX_CHUNK_BYTES)]
    device: Id = ""
    boot_id: Id = ""
    seq: Seq = 0
    """Always 0: chunks are not numbered like outbox messages (they are keyed by frame,
    file and index instead)."""
