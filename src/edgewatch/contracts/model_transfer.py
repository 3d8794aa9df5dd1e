"""Model updates pushed to a device (docs/updates.md, "Push"): the manifest the operator's
``model.push`` command carries, and the chunks the collector side publishes on
``<root>/<fleet>/<device>/update/<update id>`` (``edgewatch.model_chunk/1``)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from edgewatch.contracts.bounds import Count, Digest, Id
from edgewatch.contracts.digest import sha256

CHUNK_SCHEMA = "edgewatch.model_chunk/1"
MIN_CHUNK_BYTES = 4 * 1024
MAX_CHUNK_BYTES = 256 * 1024
DEFAULT_CHUNK_BYTES = 64 * 1024
MAX_FILE_BYTES = 2**31 - 1
"""A file's size travels as a command argument (32-bit integers)."""

Role = Literal["model", "reference", "labels", "signature"]
ROLES: tuple[str, ...] = ("model", "reference", "labels", "signature")
"""``signature``: a raw 64-byte Ed25519 signature of the model file's bytes."""
UpdateId = Annotated[str, Meta(min_length=1, max_length=64,
                               pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")]
"""A plain topic level and folder name."""
FileName = Annotated[str, Meta(min_length=1, max_length=160,
                               pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z")]
"""A plain file name (no path): staged as ``<staging_dir>/<update id>/<name>``."""


class ModelFile(Struct, forbid_unknown_fields=True, frozen=True):
    role: Role
    name: FileName
    bytes: Annotated[int, Meta(ge=0, le=MAX_FILE_BYTES)]
    sha256: Annotated[str, Meta(min_length=64, max_length=64, pattern=r"^[0-9a-f]*\Z")]

    def arg(self) -> str:
        return f"{self.role}:{self.name}:{self.bytes}:{self.sha256}"


class ModelManifest(Struct, forbid_unknown_fields=True, frozen=True):
    """What an update is made of. On the wire (``model.push``'s flat arguments): ``update``,
    ``chunk_bytes`` and ``files``, a list of ``"<role>:<name>:<bytes>:<sha256>"``."""

    update: UpdateId
    chunk_bytes: Annotated[int, Meta(ge=MIN_CHUNK_BYTES, le=MAX_CHUNK_BYTES)]
    files: Annotated[list[ModelFile], Meta(min_length=1, max_length=4)]

    def __post_init__(self) -> None:
        roles = [f.role for f in self.files]
        names = [f.name for f in self.files]
        if roles.count("model") != 1:
            raise ValueError("an update holds exactly one file of role 'model'")
        if len(set(roles)) != len(roles) or len(set(names)) != len(names):
            raise ValueError("file roles and names must be unique")

    def chunks(self, file: ModelFile) -> int:
        """Chunks ``file`` travels in (at least one, even when empty)."""
        return max(1, math.ceil(file.bytes / self.chunk_bytes))

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def file(self, name: str) -> ModelFile | None:
        return next((f for f in self.files if f.name == name), None)

    def role(self, role: str) -> ModelFile | None:
        return next((f for f in self.files if f.role == role), None)

    def to_args(self) -> dict[str, Any]:
        return {"update": self.update, "chunk_bytes": self.chunk_bytes,
                "files": [f.arg() for f in self.files]}

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ModelManifest:
        """The manifest of ``model.push``'s arguments; ValueError saying what is wrong."""
        files = args.get("files")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ValueError("'files' must be a list of '<role>:<name>:<bytes>:<sha256>'")
        parsed = []
        for item in files:
            parts = item.split(":")
            if len(parts) != 4 or not parts[2].isdigit():
                raise ValueError(f"bad file {item[:80]!r}: expected "
                                 "'<role>:<name>:<bytes>:<sha256>'")
            parsed.append({"role": parts[0], "name": parts[1], "bytes": int(parts[2]),
                           "sha256": parts[3]})
        try:
            return msgspec.convert({"update": args.get("update"),
                                    "chunk_bytes": args.get("chunk_bytes"),
                                    "files": parsed}, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None

    def key(self) -> str:
        """A digest of the manifest: the same files cut the same way give the same id."""
        text = "\n".join([str(self.chunk_bytes), *sorted(f.arg() for f in self.files)])
        return sha256(text.encode()).hexdigest()


class ModelChunk(Struct, forbid_unknown_fields=True, omit_defaults=True,
                 tag_field="schema", tag=CHUNK_SCHEMA):
    """One chunk of one file of an update (QoS 1, not retained), published by the
    operator's ``edgewatch model push`` on ``<root>/<fleet>/<device>/update/<update id>``.
    The device writes ``data`` at ``index * chunk_bytes`` of the file's staging copy."""

    update: UpdateId
    """The update id of the manifest (``model.push``), also the topic's last level."""
    file: FileName
    """The file's name in the manifest (``model.onnx``, ``reference.json``, ...)."""
    index: Count
    """Chunk number, from 0."""
    data: Annotated[bytes, Meta(max_length=MAX_CHUNK_BYTES)]
    """``chunk_bytes`` of the file (fewer for its last chunk)."""
    sha256: Digest = ""
    """SHA-256 of the whole file (the manifest's), so a chunk of another push of the same
    update id is recognised."""
    device: Id = ""
