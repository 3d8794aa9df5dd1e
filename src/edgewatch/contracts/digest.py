"""SHA-256, the one digest edgewatch computes and its contracts name (model files,
references, configurations, transfers), without loading OpenSSL.

CPython's own implementation (``_sha256``) where the interpreter has it: ``hashlib`` would
load OpenSSL's libcrypto for it, megabytes of resident memory on a device that has no
other use for it (a replay, an agent without MQTT; paho loads it for TLS when MQTT is on;
``python bench/memory.py`` measures a replay).
It hashes more slowly than OpenSSL's (a few hundred MB/s: a model file of 12 MB in tens of
milliseconds, once at start-up), and gives the same digests (tests/test_digest.py).
"""

from __future__ import annotations

try:
    from _sha256 import sha256
except ImportError:  # an interpreter built without it
    from hashlib import sha256

__all__ = ["sha256"]
