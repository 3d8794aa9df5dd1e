"""Where the tests find the programs they run: on PATH, then in ``.venv/tools/bin`` (where
``scripts/setup-test-tools.sh`` links the programs it unpacks from Debian packages without
installing them: mosquitto, promtool, prometheus-alertmanager, amtool), then in the sbin
directories (Debian puts mosquitto in /usr/sbin, often not on a user's PATH)."""

from __future__ import annotations

import os
import shutil

from support.paths import REPO

TOOLS_BIN = REPO / ".venv" / "tools" / "bin"
"""The programs ``scripts/setup-test-tools.sh`` unpacked (not installed: no services)."""
_SBIN = ("/usr/sbin", "/usr/bin", "/sbin")


def find_tool(*names: str) -> str | None:
    """The path of the first of ``names`` found, or None."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for name in names:
        for folder in (str(TOOLS_BIN), *_SBIN):
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    return None
