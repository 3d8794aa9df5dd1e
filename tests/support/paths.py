"""Where things are: the repository, the test data, the real model and footage, and the
agent configuration the tests build on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
"""The repository root."""
DATA = REPO / "tests" / "data"
"""Small checked-in test data (``summary-example.json``)."""


def assets_dir() -> Path | None:
    """The assets (``video/vtest.avi``, the SSDLite model), or None when not fetched."""
    env = os.environ.get("EDGEWATCH_ASSETS")
    candidates = [Path(env)] if env else []
    candidates += [REPO / "assets", REPO.parent / "shared" / "assets"]
    for c in candidates:
        if (c / "video" / "vtest.avi").is_file() and (
            c / "models" / "ssdlite_mobilenet_v2_coco.onnx"
        ).is_file():
            return c.resolve()
    return None


def ssd_config_dict(assets: Path, **overrides: dict[str, Any]) -> dict[str, Any]:
    """The agent configuration (a dict, before parsing) of the SSDLite detector in
    ``assets``; each override updates (or adds) one section."""
    base: dict[str, Any] = {
        "device": {"id": "test-cam"},
        "model": {
            "path": str(assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"),
            "labels": str(assets / "models" / "coco_labels.txt"),
        },
        "window": {"seconds": 10.0},
        "resources": {"enabled": False},
    }
    for key, value in overrides.items():
        base.setdefault(key, {}).update(value)
    return base
