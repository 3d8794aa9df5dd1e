"""Crash test of the outbox: a child that writes until SIGKILLed, and the campaign around it.

    python tests/support/outbox_crash_child.py DB [--caps] [--seed N]

runs the child: it opens the outbox at DB and loops forever putting messages (and now and
then acknowledging one), printing one flushed line per event on stdout:

    READY <last_seq>          the outbox is open
    P <seq>                   put() returned, not degraded: the message is committed
    M <seq> <reason>          put() returned degraded: the message is only in memory
    A <seq> <n> <seq> ...     about to ack a row: its seq, the evictions its loss report
                              counts, every original seq it holds

``run_campaign`` starts the child again and again on the same file, kills it with SIGKILL
after a random delay, and checks the file after every kill: ``PRAGMA integrity_check`` is
ok, every seq reported committed and not (about to be) acknowledged is still there (as a
row or inside a compacted row's ``merged_seqs``; with ``--caps`` a missing one must be
covered by the evicted count), and seqs are never issued twice. bench/outbox_crash.py
runs it from the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CAPS_MAX_BYTES = 160 * 1024
PLAIN_MAX_BYTES = 256 * 1024 * 1024


def merge_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Generic summary merge: integers add, ``window`` spans both, anything else keeps a's."""
    out = dict(a)
    for key, value in b.items():
        mine = a.get(key)
        if key == "window" and isinstance(mine, dict):
            out[key] = {"start": min(mine["start"], value["start"]),
                        "end": max(mine["end"], value["end"])}
        elif isinstance(mine, dict) and isinstance(value, dict):
            out[key] = merge_counts(mine, value)
        elif isinstance(mine, int) and isinstance(value, int) and not isinstance(mine, bool):
            out[key] = mine + value
        elif key not in a:
            out[key] = value
    return out


# -- the child ---------------------------------------------------------------------------


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _one_message(outbox: Any, rng: random.Random, i: int) -> None:
    roll = rng.random()
    if roll < 0.1:
        seq = outbox.put("alert", {"type": "alert", "n": i}, priority=2)
    elif roll < 0.2:
        seq = outbox.put("status", {"type": "status", "n": i}, priority=1)
    else:
        t = time.time()
        ref = rng.choice(("ref-1", "ref-1", "ref-2"))  # runs to compact, breaks to evict
        payload = {"type": "summary", "reference_id": ref, "window": {"start": t, "end": t},
                   "frames": {"seen": 1}, "pad": "x" * rng.randint(50, 1500)}
        seq = outbox.put("summary", payload, priority=0, window_start=t, window_end=t,
                         attach_loss=rng.random() < 0.2)
    if outbox.degraded is None:
        _say(f"P {seq}")
    else:  # kept in memory only: not committed
        _say(f"M {seq} {outbox.degraded}")


def _maybe_ack(outbox: Any, rng: random.Random) -> None:
    if rng.random() < 0.35:
        rows = outbox.pending(3)
        if rows:
            row = rng.choice(rows)
            seqs = row.payload.get("merged_seqs") or [row.seq]
            carried = _carried_evictions(row.payload)
            _say(f"A {row.seq} {carried} " + " ".join(str(s) for s in seqs))
            outbox.ack(row.seq)


def _carried_evictions(payload: dict[str, Any]) -> int:
    """Evicted messages counted in the loss report a payload carries."""
    return sum(payload.get("loss", {}).get("evicted", {}).values())


def child_main(argv: list[str] | None = None) -> int:
    """Open the outbox and write until killed."""
    from edgewatch.agent.delivery.outbox import Outbox
    from edgewatch.clock import SystemClock

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--caps", action="store_true", help="tiny disk cap: compact and evict")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    outbox = Outbox(args.db, device="crash-dev", boot_id="boot-1", clock=SystemClock(),
                    max_bytes=CAPS_MAX_BYTES if args.caps else PLAIN_MAX_BYTES,
                    max_age_s=1e9, merge=merge_counts)
    _say(f"READY {outbox.last_seq}")
    i = 0
    while True:
        _one_message(outbox, rng, i)
        _maybe_ack(outbox, rng)
        i += 1


# -- the campaign ------------------------------------------------------------------------


@dataclasses.dataclass
class CampaignResult:
    """What a series of SIGKILLs did to the outbox file."""

    kills: int = 0
    committed: int = 0
    """Puts the children reported as returned (committed)."""
    ack_intents: int = 0
    integrity: list[str] = dataclasses.field(default_factory=list)
    """integrity_check result after each kill ("ok" when intact)."""
    missing: int = 0
    """Committed, unacknowledged seqs absent after the last kill (and not evicted)."""
    unexplained: list[str] = dataclasses.field(default_factory=list)
    """Any violation: missing seqs beyond the evicted count, reused seqs, child errors."""
    wal_bytes_at_kill: list[int] = dataclasses.field(default_factory=list)
    puts_per_run: list[int] = dataclasses.field(default_factory=list)
    evicted: int = 0
    compacted_rows: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.unexplained and all(r == "ok" for r in self.integrity)

    def summary(self) -> dict[str, Any]:
        walled = sum(1 for w in self.wal_bytes_at_kill if w > 0)
        return {
            "kills": self.kills, "committed_puts": self.committed,
            "ack_intents": self.ack_intents,
            "integrity_ok": sum(1 for r in self.integrity if r == "ok"),
            "missing_committed": self.missing, "evicted_by_caps": self.evicted,
            "rows_holding_merged_seqs": self.compacted_rows,
            "kills_leaving_a_wal": walled,
            "puts_per_run_min_max": [min(self.puts_per_run, default=0),
                                     max(self.puts_per_run, default=0)],
            "violations": self.unexplained, "seconds": round(self.seconds, 1),
        }


@dataclasses.dataclass
class _Ledger:
    """What the parent learnt from the children's stdout, over all runs."""

    committed: list[int] = dataclasses.field(default_factory=list)
    acked: set[int] = dataclasses.field(default_factory=set)
    acked_loss: dict[int, int] = dataclasses.field(default_factory=dict)
    """Evictions reported by the loss report of each (about to be) acknowledged row."""


@dataclasses.dataclass
class _Snapshot:
    """The outbox file as the parent reads it after a kill."""

    integrity: str
    present: set[int]
    """Every original seq still held, as a row or in a row's merged_seqs."""
    carried: dict[int, int]
    """Row seq: evictions counted by the loss report the row carries."""
    meta: dict[str, int]
    merged_rows: int


def _read_db(db: Path) -> _Snapshot:
    conn = sqlite3.connect(str(db))
    try:
        snap = _Snapshot("; ".join(r[0] for r in conn.execute("PRAGMA integrity_check")),
                         set(), {}, {}, 0)
        for seq, payload_json in conn.execute("SELECT seq, payload FROM messages"):
            payload = json.loads(payload_json)
            merged = payload.get("merged_seqs")
            snap.merged_rows += bool(merged)
            snap.present.update(merged or [seq])
            snap.carried[seq] = _carried_evictions(payload)
        snap.meta = {k: int(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    finally:
        conn.close()
    return snap


def _run_child(db: Path, caps: bool, seed: int, delay: float) -> tuple[int, list[str], str]:
    """Start a child, kill it ``delay`` s after READY; (READY's last_seq, lines, stderr)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), str(db), "--seed", str(seed)]
    # Unbuffered: readline() then takes exactly READY's bytes, and communicate() (which
    # reads the pipe itself, not through a Python buffer) gets every later line.
    proc = subprocess.Popen(cmd + (["--caps"] if caps else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0)
    assert proc.stdout is not None
    ready = proc.stdout.readline().decode()
    if ready.startswith("READY "):
        time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    out, err = (b.decode(errors="replace") for b in proc.communicate(timeout=30))
    if not ready.startswith("READY "):
        return -1, [], f"child did not start: {ready!r} {err.strip()[-500:]}"
    error = err.strip()[-500:] if proc.returncode != -signal.SIGKILL else ""
    return int(ready.split()[1]), out.split("\n")[:-1], error


def _absorb(ledger: _Ledger, last_seq: int, lines: list[str], result: CampaignResult) -> None:
    """Record a run's events and check that its seqs are new and increasing."""
    previous = max(ledger.committed, default=0)
    if last_seq < previous:
        result.unexplained.append(f"reopened with last_seq {last_seq} < committed {previous}")
    puts = [int(ln.split()[1]) for ln in lines if ln.startswith("P ")]
    if puts and (puts[0] <= previous or puts != sorted(set(puts))):
        result.unexplained.append(f"seqs not new and increasing: {puts[:5]} after {previous}")
    for ln in lines:
        if ln.startswith("M "):
            result.unexplained.append(f"outbox degraded: {ln}")
        if ln.startswith("A "):
            row, carried, *seqs = (int(s) for s in ln.split()[1:])
            ledger.acked.update(seqs)
            ledger.acked_loss[row] = carried
            result.ack_intents += 1
    ledger.committed += puts
    result.committed += len(puts)
    result.puts_per_run.append(len(puts))


def _check(db: Path, ledger: _Ledger, caps: bool, result: CampaignResult) -> None:
    """integrity_check and the committed seqs after a kill."""
    wal = Path(f"{db}-wal")
    result.wal_bytes_at_kill.append(wal.stat().st_size if wal.exists() else 0)
    snap = _read_db(db)
    result.integrity.append(snap.integrity)
    missing = set(ledger.committed) - ledger.acked - snap.present
    evicted = sum(v for k, v in snap.meta.items() if k.startswith("evicted."))
    evicted += sum(snap.carried.values())  # loss reports moved into rows by attach_loss
    evicted += sum(n for s, n in ledger.acked_loss.items() if s not in snap.carried)
    result.missing, result.evicted, result.compacted_rows = len(missing), evicted, snap.merged_rows
    if missing and (not caps or len(missing) > evicted):
        result.unexplained.append(f"kill {result.kills}: {len(missing)} committed seqs "
                                  f"missing (evicted {evicted}): {sorted(missing)[:10]}")


def run_campaign(db: Path, kills: int, *, caps: bool = False, seed: int = 0,
                 delay: tuple[float, float] = (0.02, 0.2)) -> CampaignResult:
    """SIGKILL a writing child ``kills`` times on the same file, checking after each kill."""
    rng = random.Random(seed)
    result, ledger = CampaignResult(), _Ledger()
    start = time.monotonic()
    for _ in range(kills):
        last_seq, lines, error = _run_child(db, caps, rng.randrange(1 << 30),
                                            rng.uniform(*delay))
        if error:
            result.unexplained.append(error)
            break
        result.kills += 1
        _absorb(ledger, last_seq, lines, result)
        _check(db, ledger, caps, result)
    result.seconds = time.monotonic() - start
    return result


if __name__ == "__main__":
    sys.exit(child_main())
