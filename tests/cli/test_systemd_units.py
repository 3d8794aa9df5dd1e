"""The shipped systemd units (systemd/) run the commands ``edgewatch run`` and ``edgewatch
collector`` as supervised, hardened services: they pass ``systemd-analyze verify``,
``systemd-analyze security`` rates each at most 2.0, they use the notify protocol with a
watchdog, a configuration error is not restarted, and the example configurations for them
(configs/systemd/) write only into the units' state directories."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgewatch.config.agent import load_config
from edgewatch.config.collector import load_collector_config
from support.paths import REPO

UNITS = {"agent": REPO / "systemd" / "edgewatch-agent.service",
         "collector": REPO / "systemd" / "edgewatch-collector.service"}
SYSUSERS = REPO / "systemd" / "edgewatch.sysusers.conf"
INSTALLED = "/opt/edgewatch/.venv/bin/edgewatch"
MAX_EXPOSURE = 2.0


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (scripts/setup-venv.sh installs systemd)")
    return tool


def _service(name: str) -> dict[str, list[str]]:
    """The [Service] section: every value of each key, in order."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in UNITS[name].read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def _local_copy(name: str, tmp_path: Path) -> Path:
    """The unit with ExecStart= pointing at this checkout's edgewatch (verify checks that
    the binary exists)."""
    binary = Path(sys.executable).parent / "edgewatch"
    text = UNITS[name].read_text(encoding="utf-8")
    assert INSTALLED in text
    copy = tmp_path / UNITS[name].name
    copy.write_text(text.replace(INSTALLED, str(binary)), encoding="utf-8")
    return copy


@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_unit_verifies_and_is_hardened(name: str, tmp_path: Path) -> None:
    unit = _local_copy(name, tmp_path)
    done = subprocess.run([_analyze(), "verify", str(unit)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert unit.name not in done.stdout + done.stderr  # no warning about our unit
    done = subprocess.run([_analyze(), "security", "--offline=true", str(unit)],
                          capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_unit_is_supervised_and_does_not_restart_a_configuration_error(name: str) -> None:
    service = _service(name)
    assert service["Type"] == ["notify"]
    assert int(service["WatchdogSec"][0]) >= 10
    assert service["Restart"] == ["always"]
    assert service["RestartPreventExitStatus"] == ["2"]  # edgewatch.cli.common.EXIT_USAGE
    assert service["User"] == ["edgewatch"]
    assert service["UMask"] == ["0077"]
    assert service["MemoryDenyWriteExecute"] == ["yes"]
    assert service["ExecStart"][0].startswith(f"{INSTALLED} {'run' if name == 'agent' else name}")


def test_the_sysusers_file_creates_the_units_user() -> None:
    entries = [line.split() for line in SYSUSERS.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    assert [(e[0], e[1]) for e in entries] == [("u", "edgewatch")]


def _state_directory(name: str) -> Path:
    return Path("/var/lib") / _service(name)["StateDirectory"][0]


def test_the_systemd_configurations_write_only_into_the_state_directories() -> None:
    agent = load_config(REPO / "configs" / "systemd" / "agent.toml")
    state = _state_directory("agent")
    for written in (agent.outbox.path, agent.alerts.state_path):
        assert Path(written).parent == state, written
    assert agent.mqtt.enabled and not agent.output.jsonl
    collector = load_collector_config(REPO / "configs" / "systemd" / "collector.toml")
    assert collector.store.url == f"sqlite:///{_state_directory('collector')}/collector.db"
    assert "--config /etc/edgewatch/agent.toml" in _service("agent")["ExecStart"][0]


MDWE_CHILD = textwrap.dedent('''
    import ctypes, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        print("unsupported"); sys.exit(0)
    import mmap
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        print("not enforced"); sys.exit(0)
    except OSError:
        pass
    import cv2, onnxruntime, paho.mqtt.client, prometheus_client, psutil, psycopg
    from edgewatch.agent.inference.engine import InferenceEngine
    from edgewatch.config.agent import parse_config
    sys.path.insert(0, sys.argv[2])
    from support.paths import ssd_config_dict
    from pathlib import Path
    engine = InferenceEngine(parse_config(ssd_config_dict(Path(sys.argv[1]))).model)
    cap = cv2.VideoCapture(str(Path(sys.argv[1]) / "video" / "vtest.avi"))
    for _ in range(3):
        ok, frame = cap.read()
        engine.infer(frame)
    psutil.cpu_percent(0.05), psutil.virtual_memory()
    print("ok")
''')


def test_memory_deny_write_execute_suits_the_agent_and_the_collector(assets: Path) -> None:
    """What MemoryDenyWriteExecute=yes refuses (memory both writable and executable) is
    refused here too, by the kernel's PR_SET_MDWE: opencv, onnxruntime running the SSD model,
    psutil and the collector's packages work without it."""
    assert all(_service(name)["MemoryDenyWriteExecute"] == ["yes"] for name in UNITS)
    done = subprocess.run([sys.executable, "-c", MDWE_CHILD, str(assets),
                           str(REPO / "tests")], capture_output=True, text=True, timeout=300,
                          check=False)
    out = done.stdout.strip().splitlines()[-1:] or [""]
    if out[0] in ("unsupported", "not enforced"):
        pytest.skip(f"PR_SET_MDWE {out[0]} by this kernel (Linux >= 6.3 has it)")
    assert done.returncode == 0 and out == ["ok"], done.stderr[-2000:]
