"""A device that receives pushed model updates, for the push tests: the agent's outbox,
publisher and command router with an :class:`~edgewatch.agent.update.receive.UpdateReceiver`,
connected to a real broker; staged updates are recorded (``staged``, and as JSON lines in
``<workdir>/staged.jsonl``). A "running model" file sits in ``<workdir>/running/``, which the
push must never touch.

    python tests/support/update_device.py WORKDIR HOST PORT [MAX_MB]

runs the device as a child process (for the SIGKILL test): it prints ``READY`` once
connected and subscribed, then serves until killed.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path

if __name__ == "__main__":  # run as a script: make ``edgewatch`` and ``support`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgewatch.agent.commands import CommandRouter
from edgewatch.agent.delivery.outbox import Outbox
from edgewatch.agent.delivery.publisher import Publisher
from edgewatch.agent.delivery.status import Manifest
from edgewatch.agent.update.receive import UpdateReceiver
from edgewatch.agent.update.staged import StagedUpdate
from edgewatch.clock import SystemClock
from edgewatch.config.delivery import MqttConfig
from edgewatch.contracts.topics import Topics

FLEET = "f1"
ROOT = "edgewatch/v1"


class UpdateDevice:
    def __init__(self, host: str, port: int, workdir: Path, *, device: str = "cam-1",
                 running_model: Path | None = None, max_mb: float = 256.0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.running = workdir / "running" / "model.onnx"
        if running_model is not None and not self.running.exists():
            self.running.parent.mkdir(exist_ok=True)
            shutil.copyfile(running_model, self.running)
        boot = uuid.uuid4().hex
        clock = SystemClock()
        self.outbox = Outbox(workdir / "outbox.db", device=device, boot_id=boot, clock=clock,
                             max_bytes=8 * 2**20, max_age_s=86400.0, merge=None)
        self.topics = Topics(ROOT, FLEET, device)
        self.manifest = Manifest(device=device, fleet=FLEET, boot_id=boot,
                                 started=clock.now(), model_name="m", model_sha256="ab" * 32,
                                 adapter="ssd", reference_id="r1", config_sha256="")
        self.cfg = MqttConfig(enabled=True, host=host, port=port, encoding="json",
                              topic_root=ROOT, reconnect_min_s=0.05, reconnect_max_s=0.3)
        self.router = CommandRouter()
        self.staged: list[StagedUpdate] = []
        self.staged_event = threading.Event()
        self.receiver = UpdateReceiver(workdir / "updates", device, on_staged=self._on_staged,
                                       max_bytes=int(max_mb * 2**20))
        self.receiver.recover()
        self.receiver.register(self.router)
        self.publisher = Publisher(self.cfg, self.outbox, self.topics, self.manifest,
                                   commands=self.router)
        self.publisher.updates = self.receiver.chunk

    def _on_staged(self, staged: StagedUpdate) -> None:
        self.staged.append(staged)
        with (self.workdir / "staged.jsonl").open("a") as f:
            f.write(json.dumps({"update": staged.update_id, "model": str(staged.model),
                                "sha256": staged.model_sha256, "directory":
                                str(staged.directory),
                                "reference": str(staged.reference or ""),
                                "labels": str(staged.labels or "")}) + "\n")
        self.staged_event.set()

    def start(self, timeout: float = 15.0) -> UpdateDevice:
        self.publisher.start()
        assert self.publisher.connected.wait(timeout), "the device did not connect"
        return self

    def close(self) -> None:
        self.publisher.stop()
        self.receiver.close()
        self.outbox.close()


def staged_lines(workdir: Path) -> list[dict[str, str]]:
    path = workdir / "staged.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def main(argv: list[str]) -> None:
    workdir, host, port = Path(argv[0]), argv[1], int(argv[2])
    max_mb = float(argv[3]) if len(argv) > 3 else 256.0
    device = UpdateDevice(host, port, workdir, max_mb=max_mb).start()
    print("READY", flush=True)
    while True:  # until SIGKILLed
        time.sleep(0.5)
        _ = device


if __name__ == "__main__":
    main(sys.argv[1:])
