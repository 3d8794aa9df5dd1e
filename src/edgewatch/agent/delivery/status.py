"""The device's retained status: birth message (manifest) and last will (docs/mqtt.md).

The messages are the contract types of :mod:`edgewatch.contracts.status`; the publisher
encodes them in the configured encoding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgewatch.config.maintenance import DeploymentConfig
from edgewatch.contracts.digest import sha256
from edgewatch.contracts.status import Manifest, Status

__all__ = ["Manifest", "Status", "birth", "config_sha256", "deployment_fields", "offline"]


def config_sha256(path: str | Path | None) -> str:
    if path is None:
        return ""
    return sha256(Path(path).read_bytes()).hexdigest()


def deployment_fields(deployment: DeploymentConfig) -> dict[str, Any]:
    """The ``[deployment]`` section as the manifest's fields (``Manifest(**...)``)."""
    evaluation = deployment.evaluation
    return {"model_version": deployment.model_version, "owner": deployment.owner,
            "training_data": deployment.training_data,
            "evaluation": dict(evaluation) if isinstance(evaluation, dict) else evaluation,
            "notes": deployment.notes}


def birth(manifest: Manifest, now: float) -> Status:
    """``online`` with the manifest, published on every (re)connection."""
    return Status(state="online", device=manifest.device, boot_id=manifest.boot_id, time=now,
                  manifest=manifest)


def offline(manifest: Manifest, now: float | None, reason: str) -> Status:
    """Last will (reason 'connection lost', time None) or a clean shutdown message."""
    return Status(state="offline", device=manifest.device, boot_id=manifest.boot_id, time=now,
                  reason=reason)
