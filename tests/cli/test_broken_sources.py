"""``profile build`` refuses a source it cannot learn from, reports the features it could not
learn; ``replay`` of a mostly unusable source fails; ``show`` says ``n/a`` for windows
without a verdict and counts their unusable frames."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from edgewatch.cli import main
from support.broken_sources import classifier_toml, cut_short_video, failing_model, nan_model


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(err: str) -> list[str]:
    """stderr without log lines (which start with the date)."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith("20")]


def ssd_toml(path: Path, assets: Path, extra: str = "") -> Path:
    path.write_text(f'[model]\npath = "{assets}/models/ssdlite_mobilenet_v2_coco.onnx"\n'
                    f'labels = "{assets}/models/coco_labels.txt"\n[window]\nseconds = 10.0\n'
                    f'[resources]\nenabled = false\n{extra}')
    return path


@pytest.fixture(scope="module")
def short_video(vtest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vtest's first 28 frames, all but 3 undecodable (the source gives 27 of them)."""
    return cut_short_video(vtest, tmp_path_factory.mktemp("short") / "short.avi")


def test_a_video_cut_short_is_refused(short_video: Path, assets: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ref.json"
    code, _, err = run(["profile", "build", "--config", str(ssd_toml(tmp_path / "a.toml", assets)),
                        "--source", str(short_video), "--out", str(out)], capsys)
    assert code == 1 and not out.exists()
    assert error_lines(err) == [
        "edgewatch: error: short.avi: only 3 of 27 frames usable for a reference (at least "
        "20, reference.min_frames): 24 undecodable"]


@pytest.mark.parametrize(("make", "cause"), [(nan_model, "30 NaN or infinite outputs"),
                                             (failing_model, "30 inference failed")])
def test_a_model_that_gives_nothing_usable_is_refused(
        make: Callable[[Path], Path], cause: str, vtest: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    model = make(tmp_path / "m.onnx")
    out = tmp_path / "ref.json"
    code, _, err = run(["profile", "build", "--config",
                        str(classifier_toml(tmp_path / "a.toml", model)), "--source", str(vtest),
                        "--frames", "0:30", "--out", str(out)], capsys)
    assert code == 1 and not out.exists()
    assert error_lines(err) == [
        "edgewatch: error: vtest.avi: only 0 of 30 frames usable for a reference (at least "
        f"20, reference.min_frames): {cause}"]


def test_the_minimum_is_configurable(short_video: Path, assets: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ssd_toml(tmp_path / "a.toml", assets, "[reference]\nmin_frames = 3\n")
    out = tmp_path / "ref.json"
    code, stdout, _ = run(["profile", "build", "--config", str(cfg), "--source",
                           str(short_video), "--out", str(out)], capsys)
    assert code == 0
    assert f"{out}: reference " in stdout and "from 3 frames, 24 undecodable," in stdout
    profile = json.loads(out.read_text())
    assert profile["frames"] == 3
    assert profile["excluded"]["brightness"].startswith("only 3 samples in 3 frames")


def test_features_with_too_few_samples_are_excluded_and_do_not_vote(
        vtest: Path, assets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # At score 0.98 the first 40 frames of vtest hold 3 detections: too few to learn from.
    cfg = ssd_toml(tmp_path / "a.toml", assets,
                   "[model.postprocess]\nscore_threshold = 0.98\n")
    ref = tmp_path / "ref.json"
    code, stdout, _ = run(["profile", "build", "--config", str(cfg), "--source", str(vtest),
                           "--frames", "0:40", "--out", str(ref)], capsys)
    assert code == 0
    reason = "only 3 samples in 40 frames (at least 20 needed, drift.min_reference_samples)"
    assert f"  box_area: excluded from drift verdicts: {reason}" in stdout.splitlines()
    excluded = json.loads(ref.read_text())["excluded"]
    assert set(excluded) == {"box_area", "box_aspect", "score_mean", "classes", "position"}
    assert excluded["box_area"] == reason
    out = tmp_path / "out.jsonl"
    code, _, err = run(["replay", "--config", str(cfg), "--source", str(vtest), "--frames",
                        "40:240", "--reference", str(ref), "--out", str(out), "--start",
                        "1767225600"], capsys)
    assert code == 0, err
    summaries = [line for line in map(json.loads, out.read_text().splitlines())
                 if line["type"] == "summary"]
    assert len(summaries) == 2
    for line in summaries:
        drift = line["drift"]
        assert set(drift["not_voting"]) == set(excluded)
        assert drift["not_voting"]["box_area"] == f"reference: {reason}"
        assert not any(r.startswith(("box_", "classes", "position")) for r in drift["reasons"])


def test_replay_of_a_mostly_undecodable_file_fails_and_show_says_so(
        short_video: Path, vtest: Path, assets: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ssd_toml(tmp_path / "a.toml", assets)
    ref, out = tmp_path / "ref.json", tmp_path / "out.jsonl"
    assert run(["profile", "build", "--config", str(cfg), "--source", str(vtest), "--frames",
                "0:40", "--out", str(ref)], capsys)[0] == 0
    code, _, err = run(["replay", "--config", str(cfg), "--source", str(short_video),
                        "--reference", str(ref), "--out", str(out), "--start", "1767225600"],
                       capsys)
    assert code == 1
    lines = out.read_text().splitlines()
    assert error_lines(err) == [
        f"edgewatch: error: {short_video}: 24 of 27 frames unusable (24 undecodable, 0 "
        f"inference failed, 0 NaN or infinite outputs); {out}: {len(lines)} lines"]
    code, table, _ = run(["show", str(out)], capsys)
    assert code == 0
    _, header, units, row = table.splitlines()[:4]
    names, cells = header.split(), row.split()
    assert "frames" in units and len(names) == len(cells)
    assert [cells[names.index(n)] for n in ("seen", "mon", "drop", "errors")] == [
        "27", "7", "0", "24"]
    assert cells[-1] == "insufficient"  # 7 monitored frames: no drift verdict, not "ok"
