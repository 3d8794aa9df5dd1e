"""Crash test of the update lifecycle: a child agent that runs it until SIGKILLed.

    python tests/support/update_crash_child.py WORKDIR [--stage MODEL] [--soak S]

opens the agent on the SSD (``update.models_dir`` in WORKDIR, the reference in
WORKDIR/reference.json), optionally hands it a staged update of MODEL, and processes vtest
frames, printing one flushed line per event:

    ENGINE <path>       the model it started with (or swapped to: SWAP <path>)
    STATE <state>       the lifecycle entered a state
    SETTLED <state>     the lifecycle reached a final state (then it exits)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2

from edgewatch.agent.app import Agent
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.records import Frame
from edgewatch.agent.update.files import active_model
from edgewatch.agent.update.lifecycle import UpdateManager
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import parse_config
from edgewatch.contracts.update_status import UpdateStatus
from support.paths import assets_dir, ssd_config_dict
from support.updates import stage, update_config


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("workdir", type=Path)
    p.add_argument("--stage", type=Path)
    p.add_argument("--soak", type=float, default=60.0)
    args = p.parse_args()
    assets = assets_dir()
    assert assets is not None
    reference_path = args.workdir / "reference.json"
    cfg = update_config(parse_config(ssd_config_dict(assets)), args.workdir, reference_path,
                        soak_seconds=args.soak)
    active = active_model(cfg)
    engine = InferenceEngine(active.model)
    say(f"ENGINE {engine.cfg.path}")
    reference = ReferenceProfile.load(active.reference.path)
    agent = Agent(active, engine, reference, lambda summary: None, live=True)

    def publish(status: UpdateStatus) -> None:
        say(f"STATE {status.state}")

    manager = UpdateManager(cfg, engine, device="test-cam", publish=publish)
    agent.update = manager
    if args.stage:
        manager.received(stage(args.workdir, args.stage, "u-crash"))
    cap = cv2.VideoCapture(str(assets / "video" / "vtest.avi"))
    frames = []
    for _ in range(40):
        ok, image = cap.read()
        assert ok
        frames.append(image)
    n = 0
    running = agent.engine
    while not manager.done.is_set():
        agent.process(Frame(n, n / 25.0, frames[n % len(frames)]))
        n += 1
        if agent.engine is not running:
            running = agent.engine
            assert running is not None
            say(f"SWAP {running.cfg.path}")
        time.sleep(0.005)
    say(f"SETTLED {manager.state['state']}")
    agent.update.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
