"""Peak on-disk size of the outbox against its cap, sampled while writing.

    python bench/outbox_cap.py [--cap 0.15 --cap 1] [--puts 300]

For each cap (MiB): real summaries (tests/data/summary-example.json as schema 2), some
alerts and statuses, put into a fresh outbox with nothing draining it (broker down). A
thread polls the size of every file in the outbox's directory (database, -wal, -shm,
-journal) as fast as it can, and the size is also read after every put. Prints the peak,
the cap, the size at rest and the put rate; exit status 1 if a peak exceeded its cap.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from edgewatch.agent.delivery.assembly import wire_summary  # noqa: E402
from edgewatch.agent.delivery.outbox import Outbox  # noqa: E402
from edgewatch.clock import ManualClock  # noqa: E402
from support.outbox_crash_child import merge_counts  # noqa: E402


def on_disk(directory: Path) -> int:
    total = 0
    for entry in os.scandir(directory):
        with contextlib.suppress(FileNotFoundError):
            total += entry.stat().st_size
    return total


def run(cap: int, puts: int, example: dict[str, Any], work: Path) -> tuple[int, int, float]:
    """(peak bytes, bytes at rest, puts per second) for one cap."""
    directory = Path(tempfile.mkdtemp(dir=work))
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], on_disk(directory))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    clock = ManualClock()
    outbox = Outbox(directory / "outbox.db", device="cam-1", boot_id="b", clock=clock,
                    max_bytes=cap, max_age_s=0.0, merge=merge_counts)
    start = time.perf_counter()
    for i in range(puts):
        payload = {**example, "window": {"start": 10.0 * i, "end": 10.0 * i + 10,
                                         "windows": 1}}
        outbox.put("summary", payload, window_start=10.0 * i, window_end=10.0 * i + 10,
                   attach_loss=i % 10 == 0)
        if i % 9 == 0:
            outbox.put("alert", {"type": "alert", "n": i, "pad": "a" * 400})
        peak[0] = max(peak[0], on_disk(directory))
        clock.advance(10)
    rate = puts / (time.perf_counter() - start)
    done.set()
    sampler.join()
    outbox.close()
    return peak[0], on_disk(directory), rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, action="append", help="MiB (repeatable)")
    parser.add_argument("--puts", type=int, default=300)
    args = parser.parse_args(argv)
    example: dict[str, Any] = msgspec.to_builtins(wire_summary(
        json.loads((REPO / "tests" / "data" / "summary-example.json").read_text())))
    ok = True
    print(f"{args.puts} summaries of {len(json.dumps(example))} bytes (+ alerts), "
          "nothing draining")
    with tempfile.TemporaryDirectory(prefix="outbox-cap-") as tmp:
        for mib in args.cap or [0.15, 0.5, 1.0]:
            cap = int(mib * 2**20)
            peak, rest, rate = run(cap, args.puts, example, Path(tmp))
            ok &= peak <= cap
            print(f"cap {mib:5.2f} MiB = {cap:8d} B   peak {peak:8d} B ({peak / cap:4.0%})   "
                  f"at rest {rest:8d} B   {rate:6.1f} puts/s   "
                  f"{'ok' if peak <= cap else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
