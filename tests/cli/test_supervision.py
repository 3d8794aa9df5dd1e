"""sd_notify for ``Type=notify`` services (edgewatch.supervision): READY once, WATCHDOG only
while there is progress, STATUS lines, over a real unix datagram socket (path or abstract)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgewatch.clock import ManualClock
from edgewatch.supervision import Notifier, Supervisor, public_uri, watchdog_interval
from support.notify import NotifySocket


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> NotifySocket:
    sock = NotifySocket(tmp_path / "notify", abstract=request.param == "abstract")
    request.addfinalizer(sock.close)
    return sock


def test_notifier_sends_to_a_path_or_an_abstract_socket(listener: NotifySocket) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address})
    assert notifier.enabled and notifier.send("READY=1", "STATUS=two\nlines")
    listener.wait_for("READY", "1", timeout=5)
    assert listener.statuses() == ["two lines"]  # one message, one line per field


def test_without_notify_socket_nothing_is_sent_and_no_thread_runs() -> None:
    supervisor = Supervisor.from_environ({})
    assert not supervisor.enabled
    supervisor.start()
    supervisor.beat()
    assert supervisor._thread is None
    supervisor.stopping()


def test_a_missing_socket_is_not_fatal(tmp_path: Path) -> None:
    assert not Notifier(str(tmp_path / "gone")).send("READY=1")


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "1000000",
                              "WATCHDOG_PID": str(os.getpid())}) == 0.5


def test_pings_only_while_progressing(listener: NotifySocket) -> None:
    clock = ManualClock()
    sup = Supervisor(Notifier(listener.address), 0.5, clock=clock)
    frames = 0
    sup.status = lambda: f"monitoring cam0: {frames} frames"
    assert not sup.tick()  # nothing yet: not ready, no ping
    frames = 1
    sup.beat()  # the first frame: ready
    listener.wait_for("READY", "1", timeout=5)
    clock.advance(0.5)
    assert sup.tick()
    clock.advance(0.5)
    assert not sup.tick()  # hung: no frame since the last ping
    clock.advance(2.0)
    assert not sup.tick()
    sup.beat()
    clock.advance(0.5)
    assert sup.tick()  # frames again
    listener.wait_for("STATUS", "stalled: no progress for 2 s", timeout=5)
    assert len(listener.with_key("WATCHDOG")) == 2
    assert listener.statuses()[0] == "monitoring cam0: 1 frames"


def test_a_reconnection_wait_is_progress_until_it_ends(listener: NotifySocket) -> None:
    clock = ManualClock()
    sup = Supervisor(Notifier(listener.address), 0.5, clock=clock)
    sup.waiting(3.0, "reconnecting rtsp://cam/x (next attempt in 3 s)")
    listener.wait_for("READY", "1", timeout=5)  # a camera that is down: the agent runs
    pings = []
    for _ in range(8):
        clock.advance(0.5)
        pings.append(sup.tick())
    assert pings == [True] * 5 + [False] * 3  # up to 3 s after the attempt, then a hang
    assert "reconnecting rtsp://cam/x" in listener.statuses()[0]


def test_the_status_line_hides_credentials() -> None:
    assert public_uri("rtsp://admin:secret@10.0.0.5:554/live") == "rtsp://10.0.0.5:554/live"
    assert public_uri("/dev/video0") == "/dev/video0"


def test_the_thread_pings_and_stops(listener: NotifySocket) -> None:
    sup = Supervisor(Notifier(listener.address), 0.05)
    sup.start()
    sup.beat()
    listener.wait_for("WATCHDOG", "1", timeout=5)
    sup.stopping("stopping: test")
    listener.wait_for("STOPPING", "1", timeout=5)
    assert sup._thread is None
