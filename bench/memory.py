"""Whole-process peak RSS of ``edgewatch replay`` next to a bare decode-and-infer loop.

    python bench/memory.py [--assets DIR] [--frames 400] [--repeats 3] [--json PATH]
                           [--env NAME=VALUE ...]

Two commands run as separate processes, one after the other, alternating (replay, bare,
bare, replay, ...), ``--repeats`` times each:

- **replay**: ``edgewatch replay`` of the first ``--frames`` frames of vtest.avi with the
  demo's configuration (``configs/demo.toml``: SSDLite, 10-second windows, defaults
  elsewhere; its paths pointed at the assets and a temporary directory), against a
  reference built once first with ``edgewatch profile build`` on the same frames;
- **bare**: what an application does without edgewatch: the same frames decoded one by one
  with ``cv2.VideoCapture``, each turned to RGB and run through an onnxruntime session
  opened with the same options edgewatch's ``[model]`` defaults give (this script run with
  ``--bare``; it imports only cv2, numpy and onnxruntime).

Each child's peak resident set size is the kernel's (``ru_maxrss`` of ``wait4`` on that
child: its VmHWM when it ends). The table gives the median per command and the median of
the pairs' differences (replay - bare), in MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "models/ssdlite_mobilenet_v2_coco.onnx"
LABELS = "models/coco_labels.txt"
VIDEO = "video/vtest.avi"


def assets_dir(arg: str | None) -> Path:
    default = REPO.parent / "shared" / "assets"
    return Path(arg or os.environ.get("EDGEWATCH_ASSETS") or default)


def bare(model: str, video: str, frames: int) -> int:
    """The bare loop (``--bare``): decode, BGR -> RGB, session.run; nothing kept."""
    import cv2
    import onnxruntime as ort

    opts = ort.SessionOptions()  # what edgewatch's [model] defaults set
    opts.log_severity_level = 4
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    cap = cv2.VideoCapture(video)
    done = 0
    while done < frames:
        ok, img = cap.read()
        if not ok:
            break
        session.run(None, {name: cv2.cvtColor(img, cv2.COLOR_BGR2RGB)[None]})
        done += 1
    cap.release()
    return 0 if done == frames else 1


def demo_config(assets: Path, work: Path) -> Path:
    """configs/demo.toml with its paths in ``assets`` and ``work``."""
    text = (REPO / "configs" / "demo.toml").read_text()
    paths = {"../assets/" + MODEL: assets / MODEL, "../assets/" + LABELS: assets / LABELS,
             "../out/demo/reference.json": work / "reference.json",
             "../out/demo/alerts.db": work / "alerts.db",
             "../out/demo/outbox.db": work / "outbox.db"}
    for old, new in paths.items():
        if f'"{old}"' not in text:
            sys.exit(f"configs/demo.toml: no path {old!r} to replace")
        text = text.replace(f'"{old}"', json.dumps(str(new)))
    path = work / "demo.toml"
    path.write_text(text)
    return path


def edgewatch(*args: str) -> list[str]:
    """The ``edgewatch`` command of this Python's environment (its console script)."""
    script = Path(sys.executable).parent / "edgewatch"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "edgewatch.cli", *args]


def peak_mib(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``cmd`` as a child; its peak RSS (MiB) and wall time (s). Exits if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=None if env is None else {**os.environ, **env})
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return usage.ru_maxrss / 1024.0, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--assets", help="default: $EDGEWATCH_ASSETS, else <repo>/../shared/assets")
    p.add_argument("--frames", type=int, default=400, help="frames of vtest.avi (default 400)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each command (default 3)")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="set in both commands' environment (an allocator setting such as "
                        "MALLOC_MMAP_THRESHOLD_=131072: both sides measured alike)")
    p.add_argument("--bare", nargs=2, metavar=("MODEL", "VIDEO"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env if "=" in item)
    if len(env) != len(args.env):
        p.error("--env takes NAME=VALUE")
    if args.bare:
        return bare(args.bare[0], args.bare[1], args.frames)
    assets = assets_dir(args.assets)
    video = str(assets / VIDEO)
    with tempfile.TemporaryDirectory(prefix="edgewatch-bench-memory-") as tmp:
        work = Path(tmp)
        config = demo_config(assets, work)
        frames = f"0:{args.frames}"
        reference = str(work / "reference.json")
        peak_mib(edgewatch("profile", "build", "--config", str(config), "--source", video,
                           "--frames", frames, "--out", reference))
        commands = {
            "replay": edgewatch("replay", "--config", str(config), "--source", video,
                                "--frames", frames, "--reference", reference,
                                "--out", str(work / "summaries.jsonl")),
            "bare": [sys.executable, __file__, "--frames", str(args.frames),
                     "--bare", str(assets / MODEL), video],
        }
        runs: dict[str, list[float]] = {"replay": [], "bare": []}
        secs: dict[str, list[float]] = {"replay": [], "bare": []}
        for r in range(args.repeats):
            order = ("replay", "bare") if r % 2 == 0 else ("bare", "replay")
            for name in order:
                mib, took = peak_mib(commands[name], env)
                runs[name].append(mib)
                secs[name].append(took)
            print(f"round {r + 1}/{args.repeats}: replay {runs['replay'][-1]:.1f} MiB, bare "
                  f"{runs['bare'][-1]:.1f} MiB", file=sys.stderr)
        lines = (work / "summaries.jsonl").read_text().splitlines()
        windows = sum(1 for line in lines if re.search(r'"type":\s*"summary"', line))
    diffs = [a - b for a, b in zip(runs["replay"], runs["bare"], strict=True)]
    print(f"frames: {args.frames} of vtest.avi (768x576); {args.repeats} runs each, alternating;"
          f" the replay wrote {windows} window summaries"
          + "".join(f"; {k}={v} in both" for k, v in env.items()))
    print(f"edgewatch replay (demo config)   {statistics.median(runs['replay']):6.1f} MiB peak "
          f"RSS (median; runs {min(runs['replay']):.1f}..{max(runs['replay']):.1f}; "
          f"{statistics.median(secs['replay']):.1f} s)")
    print(f"bare decode + onnxruntime loop   {statistics.median(runs['bare']):6.1f} MiB peak "
          f"RSS (median; runs {min(runs['bare']):.1f}..{max(runs['bare']):.1f}; "
          f"{statistics.median(secs['bare']):.1f} s)")
    print(f"difference (replay - bare)       {statistics.median(diffs):+6.1f} MiB "
          f"(median of pairs; {min(diffs):+.1f}..{max(diffs):+.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": args.frames, "peak_mib": runs,
                                               "seconds": secs, "diff_mib": diffs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
