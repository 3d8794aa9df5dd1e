"""edgewatch's sha256 (CPython's own implementation) gives hashlib's digests, and the agent
runs without loading OpenSSL for it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgewatch.agent.inference.engine import file_sha256
from edgewatch.contracts.digest import sha256


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 1 << 20, (1 << 20) + 7])
def test_digests_are_hashlibs(size: int) -> None:
    data = os.urandom(size)
    assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    h = sha256()
    for i in range(0, size, 1000):
        h.update(data[i:i + 1000])
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    assert h.digest() == hashlib.sha256(data).digest()


def test_a_model_file_hashes_as_with_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(os.urandom(3 * (1 << 20) + 11))  # several 1 MiB reads
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_replay_does_not_load_openssl() -> None:
    """What a replay imports (the CLI, the agent) leaves hashlib and libcrypto out."""
    code = ("import sys, edgewatch.cli.main, edgewatch.cli.agent_commands, edgewatch.agent.app,"
            " edgewatch.agent.commands, edgewatch.agent.source_config;"
            "maps = open('/proc/self/maps').read();"
            "print('_hashlib' in sys.modules, 'libcrypto.so.3' in maps)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
