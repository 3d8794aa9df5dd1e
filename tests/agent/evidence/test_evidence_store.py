"""The evidence store: atomic writes that survive SIGKILL, the disk budget, the index."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgewatch.agent.evidence.ring import encode_jpeg
from edgewatch.agent.evidence.store import EvidenceStore, StoreRefused
from support.evidence_crash_child import crash_rounds


def _sidecar(i: int, **extra: object) -> dict[str, object]:
    return {"id": f"{1_700_000_000_000 + i:013d}-{i:07d}", "captured": 1_700_000_000.0 + i,
            "time": float(i), "frame_index": i, "triggers": [{"kind": "baseline"}], **extra}


def test_sigkill_mid_write_leaves_a_consistent_store(tmp_path: Path, vtest: Path) -> None:
    root = tmp_path / "evidence"
    committed = crash_rounds(root, vtest, rounds=6)
    assert len(committed) >= 6  # the child did write between kills
    store = EvidenceStore(root, max_bytes=1 << 34)  # reopening reconciles
    assert list(root.rglob("*.tmp")) == []
    rows = store.frames()
    ids = {r["id"] for r in rows}
    assert set(committed) <= ids  # nothing reported committed is lost
    for row in rows:  # every indexed frame is whole: both files, a decodable image
        side = json.loads((root / row["sidecar"]).read_bytes())
        assert side["id"] == row["id"] and side["schema"] == "edgewatch.evidence/1"
        image = cv2.imread(str(root / row["image"]))
        assert image is not None and image.shape == (576, 768, 3)
    files = {p.stem for p in (root / "frames").rglob("*.jpg")}
    assert files == ids == {p.stem for p in (root / "frames").rglob("*.json")}
    store.close()


def test_the_oldest_frames_are_evicted_beyond_the_budget(tmp_path: Path,
                                                         vtest_frames: list[np.ndarray]) -> None:
    jpegs = [encode_jpeg(f, 85) for f in vtest_frames[:12]]
    budget = sum(len(j) for j in jpegs[:5]) + 5 * 1000
    store = EvidenceStore(tmp_path / "ev", max_bytes=budget)
    for i, jpeg in enumerate(jpegs):
        store.write(_sidecar(i), jpeg)
        assert store.total_bytes <= budget
    kept = [r["frame_index"] for r in store.frames()]
    assert kept == list(range(12 - len(kept), 12)) and store.evicted == 12 - len(kept)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "ev" / "frames").rglob("*.*"))
    assert on_disk == store.total_bytes <= budget
    try:
        store.write(_sidecar(99), b"x" * (budget + 1))
        raise AssertionError("a frame larger than the budget was written")
    except StoreRefused as exc:
        assert exc.reason == "too_big"
    store.close()


def test_free_disk_reserve_refuses_writes(tmp_path: Path, vtest_frames: list[np.ndarray]) -> None:
    store = EvidenceStore(tmp_path / "ev", max_bytes=1 << 30, reserve_bytes=1 << 62)
    try:
        store.write(_sidecar(0), encode_jpeg(vtest_frames[0], 85))
        raise AssertionError("written although the disk reserve was not free")
    except StoreRefused as exc:
        assert exc.reason == "no_space"
    assert store.frames() == [] and list((tmp_path / "ev" / "frames").rglob("*.*")) == []
    store.close()


def test_triggers_index_frames_by_alert(tmp_path: Path, vtest_frames: list[np.ndarray]) -> None:
    store = EvidenceStore(tmp_path / "ev", max_bytes=1 << 30)
    jpeg = encode_jpeg(vtest_frames[0], 85)
    store.write(_sidecar(0), jpeg)
    store.write(_sidecar(1, triggers=[{"kind": "alert", "alert_id": "a1", "rule": "drift",
                                       "phase": "pre"}]), jpeg)
    first = store.frames()[0]["id"]
    assert store.add_trigger(first, {"kind": "alert", "alert_id": "a1", "rule": "drift",
                                     "phase": "pre"})
    assert [r["frame_index"] for r in store.frames(alert_id="a1")] == [0, 1]
    assert [r["frame_index"] for r in store.frames(kind="baseline")] == [0]
    assert len(store.sidecar(first)["triggers"]) == 2
    store.close()
    (tmp_path / "ev" / "index.sqlite").unlink()  # the sidecars rebuild a lost index
    for extra in ("-wal", "-shm"):
        (tmp_path / "ev" / f"index.sqlite{extra}").unlink(missing_ok=True)
    again = EvidenceStore(tmp_path / "ev", max_bytes=1 << 30)
    assert [r["frame_index"] for r in again.frames(alert_id="a1")] == [0, 1]
    again.close()
