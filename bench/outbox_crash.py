"""SIGKILL the outbox while it writes, again and again, and check the file after each kill.

    python bench/outbox_crash.py [--kills 100] [--caps] [--seed 0] [--db PATH] [--json PATH]

A child process (tests/support/outbox_crash_child.py) opens the outbox and puts messages in a loop
(acknowledging some, and with --caps compacting and evicting under a tiny size cap); it is
killed with SIGKILL 20-200 ms after it is ready, on the same file every time. After each
kill: PRAGMA integrity_check must say ok, every seq the child reported committed and did
not acknowledge must still be there (with --caps: unless covered by the evicted count),
and no seq may be issued twice. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.outbox_crash_child import run_campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--caps", action="store_true",
                        help="160 KiB cap: kills land in compaction, eviction and vacuum too")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", type=Path, help="outbox file (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="outbox-crash-") as tmp:
        db = args.db or Path(tmp) / "outbox.db"
        result = run_campaign(db, args.kills, caps=args.caps, seed=args.seed)
        summary = {"mode": "caps" if args.caps else "plain", "seed": args.seed,
                   **result.summary(), "ok": result.ok}
    for key, value in summary.items():
        print(f"{key:28} {value}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
