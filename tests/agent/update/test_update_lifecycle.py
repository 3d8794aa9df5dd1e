"""The update lifecycle on the real SSD and vtest frames: a good model is shadowed,
committed and soaked; a NaN, a ten times slower and a disagreeing model are rejected with
their reason; a committed model that fails or collapses in its soak is rolled back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgewatch.agent.app import Agent
from edgewatch.agent.inference.engine import InferenceEngine
from edgewatch.agent.update.files import ModelStore, active_model
from edgewatch.agent.update.lifecycle import UpdateManager
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.config.agent import AgentConfig
from edgewatch.contracts.update_status import UpdateStatus
from edgewatch.errors import ModelError
from support.onnx_models import ssd_variant
from support.updates import drive, reference_for, stage, update_config


@pytest.fixture(scope="module")
def reference_file(ssd_reference: ReferenceProfile, tmp_path_factory: pytest.TempPathFactory
                   ) -> Path:
    path = tmp_path_factory.mktemp("ref") / "reference.json"
    ssd_reference.save(path)
    return path


def make_agent(cfg: AgentConfig, reference: ReferenceProfile
               ) -> tuple[Agent, UpdateManager, list[UpdateStatus]]:
    engine = InferenceEngine(active_model(cfg).model)
    agent = Agent(cfg, engine, reference, lambda summary: None, live=True)
    statuses: list[UpdateStatus] = []
    agent.update = UpdateManager(cfg, engine, device="test-cam", publish=statuses.append)
    return agent, agent.update, statuses


def run_update(tmp_path: Path, ssd_config: AgentConfig, reference: ReferenceProfile,
               reference_file: Path, frames: list[np.ndarray], model: Path,
               with_reference: bool = True, **update: Any
               ) -> tuple[Agent, UpdateManager, list[UpdateStatus]]:
    cfg = update_config(ssd_config, tmp_path, reference_file, **update)
    agent, manager, statuses = make_agent(cfg, reference)
    ref = reference_for(reference, model, tmp_path / "new-ref.json") if with_reference else None
    manager.received(stage(tmp_path, model, "u-1", ref))
    drive(agent, frames, manager.done.is_set)
    return agent, manager, statuses


def test_a_good_model_is_shadowed_committed_and_soaked(
        tmp_path: Path, ssd_config: AgentConfig, ssd_reference: ReferenceProfile,
        reference_file: Path, vtest_frames: list[np.ndarray]) -> None:
    model = Path(ssd_config.model.path)  # the same SSD file as a "new version"
    agent, _, statuses = run_update(tmp_path, ssd_config, ssd_reference,
                                          reference_file, vtest_frames, model,
                                          with_reference=False)
    states = [s.state for s in statuses]
    assert states == ["received", "verifying", "shadow", "committed", "soaking", "done"]
    final = statuses[-1]
    assert final.reason == ""
    assert {g.name for g in final.gates} >= {"latency_ratio", "agreement", "confidence_ratio",
                                              "score_shift", "error_rate"}
    assert all(g.passed for g in final.gates)
    agreement = next(g for g in final.gates if g.name == "agreement")
    assert agreement.value > 0.95  # the same model agrees with itself
    assert final.shadow_frames >= 6 and final.soak_frames > 0
    store = ModelStore(tmp_path / "models")
    current, _ = store.current()
    assert current is not None and current.name == final.version
    assert Path(agent.engine.cfg.path) == current.model  # swapped between two frames
    assert current.intact() is None
    assert json.loads(store.state_file.read_text())["state"] == "done"
    # the next start runs the committed version
    assert active_model(update_config(ssd_config, tmp_path)).model.path == str(current.model)


@pytest.mark.parametrize(("kind", "reason"), [
    ("nan", "non-finite outputs"),
    ("slow", "p95 latency ratio"),
    ("shifted", "agreement"),
])
def test_a_bad_model_is_rejected_with_its_reason(
        kind: str, reason: str, tmp_path: Path, ssd_config: AgentConfig,
        ssd_reference: ReferenceProfile, reference_file: Path,
        vtest_frames: list[np.ndarray]) -> None:
    model = ssd_variant(Path(ssd_config.model.path), tmp_path / f"{kind}.onnx", kind)
    agent, _, statuses = run_update(tmp_path, ssd_config, ssd_reference,
                                          reference_file, vtest_frames, model)
    final = statuses[-1]
    assert final.state == "rejected", final
    assert reason in final.reason
    assert "committed" not in [s.state for s in statuses]
    assert agent.engine.cfg.path == ssd_config.model.path  # never changed
    assert ModelStore(tmp_path / "models").current() == (None, None)


def test_an_update_without_a_reference_for_a_new_model_is_rejected(
        tmp_path: Path, ssd_config: AgentConfig, ssd_reference: ReferenceProfile,
        reference_file: Path, vtest_frames: list[np.ndarray]) -> None:
    model = ssd_variant(Path(ssd_config.model.path), tmp_path / "shifted.onnx", "shifted")
    _, _, statuses = run_update(tmp_path, ssd_config, ssd_reference, reference_file,
                                vtest_frames, model, with_reference=False)
    assert statuses[-1].state == "rejected"
    assert statuses[-1].reason.startswith("reference:")


def _commit_then(tmp_path: Path, ssd_config: AgentConfig, ssd_reference: ReferenceProfile,
                 reference_file: Path, frames: list[np.ndarray], spoil: str
                 ) -> tuple[Agent, InferenceEngine, list[UpdateStatus]]:
    cfg = update_config(ssd_config, tmp_path, reference_file, soak_seconds=60.0)
    agent, manager, statuses = make_agent(cfg, ssd_reference)
    original = agent.engine
    assert original is not None
    manager.received(stage(tmp_path, Path(ssd_config.model.path), "u-2"))
    drive(agent, frames, lambda: agent.engine is not original)
    committed = agent.engine
    assert committed is not None and manager.state["state"] == "soaking"
    run = committed.run
    if spoil == "errors":
        def failing(tensor: Any) -> Any:
            raise ModelError("inference failed: injected")
        committed.run = failing  # type: ignore[method-assign]
    else:
        def collapsed(tensor: Any) -> Any:
            outputs = run(tensor)
            outputs[2] = outputs[2] * np.float32(0.01)  # detection_scores
            return outputs
        committed.run = collapsed  # type: ignore[method-assign]
    drive(agent, frames, manager.done.is_set)
    return agent, original, statuses


@pytest.mark.parametrize(("spoil", "reason"), [("errors", "error rate"),
                                               ("collapse", "outputs per frame")])
def test_a_committed_model_that_misbehaves_in_its_soak_is_rolled_back(
        spoil: str, reason: str, tmp_path: Path, ssd_config: AgentConfig,
        ssd_reference: ReferenceProfile, reference_file: Path,
        vtest_frames: list[np.ndarray]) -> None:
    agent, original, statuses = _commit_then(tmp_path, ssd_config, ssd_reference,
                                             reference_file, vtest_frames, spoil)
    final = statuses[-1]
    assert final.state == "rolled_back", final
    assert reason in final.reason
    assert agent.engine is original  # the previous engine, kept loaded during the soak
    assert ModelStore(tmp_path / "models").current() == (None, None)
    assert active_model(update_config(ssd_config, tmp_path)).model.path == \
        ssd_config.model.path


def test_the_same_update_handed_again_is_ignored(
        tmp_path: Path, ssd_config: AgentConfig, ssd_reference: ReferenceProfile,
        reference_file: Path, vtest_frames: list[np.ndarray]) -> None:
    model = ssd_variant(Path(ssd_config.model.path), tmp_path / "nan.onnx", "nan")
    agent, manager, statuses = run_update(tmp_path, ssd_config, ssd_reference,
                                          reference_file, vtest_frames, model)
    assert statuses[-1].state == "rejected"
    seen = len(statuses)
    manager.received(stage(tmp_path, model, "u-1"))  # the receiver hands at least once
    assert len(statuses) == seen and manager.state["state"] == "rejected"
    assert agent.engine is not None
