"""The device's retained status: birth message (manifest) and last will (docs/mqtt.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from edgewatch import FEATURE_SET_VERSION, __version__

SCHEMA = "edgewatch.status/1"


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What is running on the device, announced in every birth message."""

    device: str
    fleet: str
    boot_id: str
    started: float
    model_name: str
    model_sha256: str
    adapter: str
    reference_id: str
    config_sha256: str
    agent_version: str = __version__
    feature_set_version: str = FEATURE_SET_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_sha256(path: str | Path | None) -> str:
    if path is None:
        return ""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def birth(manifest: Manifest, now: float) -> bytes:
    return _encode({"schema": SCHEMA, "state": "online", "time": now,
                    "device": manifest.device, "boot_id": manifest.boot_id,
                    "manifest": manifest.to_dict()})


def offline(manifest: Manifest, now: float | None, reason: str) -> bytes:
    """Last will (reason 'connection lost', time null) or a clean shutdown message."""
    return _encode({"schema": SCHEMA, "state": "offline", "time": now, "reason": reason,
                    "device": manifest.device, "boot_id": manifest.boot_id})


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
