"""The soak's gates (edgewatch.agent.update.soak) on frames that failed: the error rate is
judged against at least ``update.soak_min_frames`` frames, and the latency and output gates
wait until frames with results arrive. The soak on a real model: test_update_lifecycle.py."""

from __future__ import annotations

from edgewatch.agent.update.soak import Soak
from edgewatch.config.agent import parse_config


def soak_of(**update: float) -> Soak:
    return Soak(parse_config({"update": update}), until=0.0, baseline_ms=10.0,
                shadow_output=1.0)


def test_failed_frames_fail_the_error_rate_gate() -> None:
    soak = soak_of(soak_min_frames=10, soak_max_error_rate=0.1)
    for _ in range(20):
        soak.add(None, failed=True, decode=True)
    gates = soak.gates()
    assert [g.name for g in gates] == ["error_rate"]
    assert (soak.frames, soak.bad) == (20, 20)
    assert gates[0].value == 1.0 and gates[0].limit == 0.1 and not gates[0].passed


def test_a_few_failures_count_against_the_minimum_frames() -> None:
    soak = soak_of(soak_min_frames=100, soak_max_error_rate=0.05)
    for _ in range(4):
        soak.add(None, failed=True, decode=False)
    [gate] = soak.gates()
    assert gate.value == 4 / 100 and gate.passed
    soak.add(None, failed=True, decode=False)
    soak.add(None, failed=True, decode=False)
    [gate] = soak.gates()
    assert gate.value == 6 / 100 and not gate.passed


def test_frames_without_a_result_are_counted_not_judged() -> None:
    soak = soak_of(soak_min_frames=5)
    for _ in range(50):
        soak.add(None, failed=False, decode=True)
    assert (soak.frames, soak.bad) == (50, 0)
    assert not soak.latency and not soak.outputs
    [gate] = soak.gates()
    assert gate.name == "error_rate" and gate.value == 0.0 and gate.passed
