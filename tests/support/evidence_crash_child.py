"""Crash test of the evidence store: a child that writes frames until SIGKILLed.

    python tests/support/evidence_crash_child.py STORE_DIR VIDEO

opens the store, then loops writing real JPEG frames of VIDEO (encoded at quality 95 so a
write takes a while), printing ``READY`` once open and ``W <id>`` after each ``write``
returned (the frame is committed). ``crash_rounds`` starts it again and again on the same
directory and kills it with SIGKILL after a random delay; the caller then checks the store.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path


def child(store_dir: str, video: str) -> None:
    import cv2

    from edgewatch.agent.evidence.ring import encode_jpeg
    from edgewatch.agent.evidence.store import EvidenceStore

    store = EvidenceStore(store_dir, max_bytes=1 << 34)
    cap = cv2.VideoCapture(video)
    frames = [cap.read()[1] for _ in range(8)]
    print("READY", flush=True)
    i = 0
    while True:
        jpeg = encode_jpeg(frames[i % len(frames)], 95)
        frame_id = f"{time.time_ns()}-{i:07d}"
        store.write({"id": frame_id, "captured": time.time(), "time": float(i),
                     "frame_index": i, "triggers": [{"kind": "baseline"}]}, jpeg)
        print(f"W {frame_id}", flush=True)
        i += 1


def crash_rounds(store_dir: Path, video: Path, rounds: int, seed: int = 7) -> list[str]:
    """Run the child ``rounds`` times, SIGKILLing it mid-loop; the ids reported committed."""
    rng = random.Random(seed)
    committed: list[str] = []
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, __file__, str(store_dir), str(video)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        committed += [line.split()[1] for line in out.splitlines() if line.startswith("W ")]
    return committed


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
