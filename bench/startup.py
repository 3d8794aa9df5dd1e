"""How long the quick commands take to start and finish, next to the interpreter alone.

    python bench/startup.py [--assets DIR] [--repeats 10] [--no-model-check]

Each command runs ``--repeats`` times as a new process (the ``edgewatch`` script next to this
interpreter, as a user runs it; else ``python -c "from edgewatch.cli import main; ..."``),
alternating with ``python -c pass`` (the interpreter's own start) in the same rounds, so the
swings of a shared machine hit both alike. The table gives the median wall time, the median
of the per-round differences to ``python -c pass`` (the part edgewatch costs), the median
CPU time (user + system: less sensitive to other load than wall time) and the median peak
RSS of the process (``/usr/bin/time -f %M``; without GNU time, ``ru_maxrss`` of the child,
which counts this script's own pages too: an upper bound). The processes run with bytecode
caches, as an installed package has them.

Measured commands: ``--version``, ``check-config --no-model`` of configs/agent.toml,
``check-config`` of configs/collector.toml, ``show`` of a summaries file of 100 vtest frames
(made at the start by ``edgewatch profile build`` and ``edgewatch replay``, not timed), and
``--help``. Target: each under 150 ms. ``check-config`` with the model opens onnxruntime and
runs a test frame; it is measured apart (``--no-model-check`` skips it) and is not under the
target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0


@dataclass
class Runs:
    """One command's measured runs."""

    label: str
    argv: list[str]
    target: bool = True
    wall_ms: list[float] = field(default_factory=list)
    over_ms: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def edgewatch_command() -> list[str]:
    """How a user starts edgewatch with this interpreter: its console script if installed."""
    script = Path(sys.executable).parent / "edgewatch"
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "import sys; from edgewatch.cli import main; sys.exit(main())"]


ENV = dict(os.environ)
"""The environment of the measured processes: with bytecode caches, as an installed package
has them (``PYTHONDONTWRITEBYTECODE`` would make every run compile edgewatch's sources);
``main`` points ``PYTHONPYCACHEPREFIX`` at a temporary folder, so the tree stays clean."""
ENV.pop("PYTHONDONTWRITEBYTECODE", None)
TIME = Path("/usr/bin/time")
"""GNU time: it forks the command from its own small process, so the peak RSS it reports is
the command's. ``wait4`` on a child of this script would also count this script's pages,
which the child shares until it execs."""


def run_once(argv: list[str]) -> tuple[float, float, float]:
    """(wall ms, CPU ms, peak RSS MiB) of one process, its output discarded; fails
    loudly."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = [str(TIME), "-f", "%M", "-o", rss.name, *argv] if TIME.is_file() else argv
        t0 = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = (time.perf_counter() - t0) * 1000.0
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        if code != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({code}):\n{err}")
        kib = int(rss.read().split()[-1]) if TIME.is_file() else usage.ru_maxrss
    cpu = (usage.ru_utime + usage.ru_stime) * 1000.0
    return wall, cpu, kib / 1024.0


def make_inputs(assets: Path, folder: Path, ew: list[str]) -> tuple[Path, Path]:
    """(agent configuration naming the shared model, summaries of 100 vtest frames)."""
    model = assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"
    video = assets / "video" / "vtest.avi"
    config = folder / "agent.toml"
    config.write_text(
        f'[model]\npath = "{model}"\nadapter = "ssd"\n'
        f'labels = "{assets / "models" / "coco_labels.txt"}"\n'
        f'[reference]\npath = "{folder / "reference.json"}"\n'
        '[window]\nseconds = 2.0\n[features]\nmax_fps = 0\n', encoding="utf-8")
    summaries = folder / "summaries.jsonl"
    for args in (["profile", "build", "--config", str(config), "--source", str(video),
                  "--frames", "0:100", "--out", str(folder / "reference.json")],
                 ["replay", "--config", str(config), "--source", str(video), "--frames",
                  "0:100", "--start", "2026-01-01T00:00:00Z", "--out", str(summaries)]):
        subprocess.run([*ew, *args], check=True, capture_output=True, timeout=600)
    return config, summaries


def measure(commands: list[Runs], baseline: Runs, repeats: int) -> None:
    """Round by round: the baseline, then every command, each followed by the baseline
    again, so each command's difference is to the interpreter's start next to it."""
    for argv in [baseline.argv] + [c.argv for c in commands]:
        run_once(argv)  # warm the page cache and the bytecode caches
    for _ in range(repeats):
        for runs in commands:
            base, base_cpu, base_rss = run_once(baseline.argv)
            wall, cpu, rss = run_once(runs.argv)
            baseline.wall_ms.append(base)
            baseline.cpu_ms.append(base_cpu)
            baseline.rss_mib.append(base_rss)
            runs.wall_ms.append(wall)
            runs.over_ms.append(wall - base)
            runs.cpu_ms.append(cpu)
            runs.rss_mib.append(rss)


def table(rows: list[Runs], baseline: Runs) -> str:
    med = statistics.median
    lines = [f"{'command':52} {'wall':>7} {'- python':>9} {'CPU':>7} {'peak RSS':>9}  target",
             f"{'(medians)':52} {'ms':>7} {'ms':>9} {'ms':>7} {'MiB':>9}",
             f"{baseline.label:52} {med(baseline.wall_ms):7.1f} {0.0:9.1f} "
             f"{med(baseline.cpu_ms):7.1f} {med(baseline.rss_mib):9.1f}  (baseline)"]
    for r in rows:
        wall = med(r.wall_ms)
        verdict = ("ok" if wall < TARGET_MS else "OVER") if r.target else "no target"
        lines.append(f"{r.label:52} {wall:7.1f} {med(r.over_ms):9.1f} {med(r.cpu_ms):7.1f} "
                     f"{med(r.rss_mib):9.1f}  {verdict}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", type=Path,
                    default=Path(os.environ.get("EDGEWATCH_ASSETS", REPO.parent / "shared"
                                                / "assets")),
                    help="the shared assets (models/, video/); default $EDGEWATCH_ASSETS")
    ap.add_argument("--repeats", type=int, default=10, help="runs of each command")
    ap.add_argument("--no-model-check", action="store_true",
                    help="skip check-config with the model (it opens onnxruntime)")
    args = ap.parse_args()
    ew = edgewatch_command()
    with tempfile.TemporaryDirectory(prefix="edgewatch-startup-") as tmp:
        ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        config, summaries = make_inputs(args.assets, Path(tmp), ew)
        baseline = Runs("python -c pass", [sys.executable, "-c", "pass"])
        rows = [
            Runs("edgewatch --version", [*ew, "--version"]),
            Runs("edgewatch --help", [*ew, "--help"]),
            Runs("edgewatch check-config --no-model configs/agent.toml",
                 [*ew, "check-config", "--no-model", str(REPO / "configs" / "agent.toml")]),
            Runs("edgewatch check-config configs/collector.toml",
                 [*ew, "check-config", str(REPO / "configs" / "collector.toml")]),
            Runs("edgewatch show SUMMARIES.jsonl (100 frames)", [*ew, "show", str(summaries)]),
        ]
        if not args.no_model_check:
            rows.append(Runs("edgewatch check-config AGENT (opens the model)",
                             [*ew, "check-config", str(config)], target=False))
        measure(rows, baseline, args.repeats)
    print(f"{args.repeats} runs each, alternating with the baseline; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}; target: "
          f"under {TARGET_MS:.0f} ms wall")
    print(table(rows, baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
