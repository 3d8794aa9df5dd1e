"""Each operator mistake is one clear line on stderr and a non-zero exit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def write_config(path: Path, model: Path, extra: str = "") -> Path:
    path.write_text(f'[model]\npath = "{model}"\n{extra}')
    return path


def fixed_input_model(path: Path) -> Path:
    """A model with a fixed 64x64 float NCHW input: the default SSD set-up cannot feed it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def assert_one_line(err: str) -> None:
    lines = [line for line in err.splitlines() if not line.startswith("20")]  # drop log lines
    assert len(lines) == 1, err
    assert lines[0].startswith("edgewatch: ")


def test_missing_model(tmp_path: Path, vtest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "nope.onnx")
    code, err = run(["profile", "build", "--config", str(cfg), "--source", str(vtest),
                     "--out", str(tmp_path / "r.json")], capsys)
    assert code == 1 and "model file not found" in err
    assert_one_line(err)


def test_wrong_input_shape(tmp_path: Path, vtest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = fixed_input_model(tmp_path / "m.onnx")
    cfg = write_config(tmp_path / "a.toml", model, 'adapter = "raw"\n')
    code, err = run(["profile", "build", "--config", str(cfg), "--source", str(vtest),
                     "--out", str(tmp_path / "r.json")], capsys)
    assert code == 1 and "model input 'x'" in err
    assert_one_line(err)


def test_unreadable_source(tmp_path: Path, assets: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "a.toml", assets / "models/ssdlite_mobilenet_v2_coco.onnx")
    code, err = run(["profile", "build", "--config", str(cfg), "--source",
                     str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "r.json")], capsys)
    assert code == 1 and "video file not found" in err
    assert_one_line(err)


def test_invalid_config(tmp_path: Path, vtest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[model]\nadapter = "detr"\n')
    code, err = run(["replay", "--config", str(cfg), "--source", str(vtest),
                     "--out", str(tmp_path / "o.jsonl")], capsys)
    assert code == 2 and "model.adapter: expected one of" in err
    assert_one_line(err)


def test_profile_for_another_model(tmp_path: Path, assets: Path, vtest: Path,
                                   ssd_reference: ReferenceProfile,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    other = dataclasses.replace(ssd_reference, model_sha256="f" * 64)
    other.save(tmp_path / "ref.json")
    cfg = write_config(tmp_path / "a.toml", assets / "models/ssdlite_mobilenet_v2_coco.onnx")
    code, err = run(["replay", "--config", str(cfg), "--source", str(vtest), "--reference",
                     str(tmp_path / "ref.json"), "--out", str(tmp_path / "o.jsonl")], capsys)
    assert code == 1 and "was built for model" in err
    assert_one_line(err)


def test_damaged_profile(tmp_path: Path, assets: Path, vtest: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ref.json").write_text("{not json")
    cfg = write_config(tmp_path / "a.toml", assets / "models/ssdlite_mobilenet_v2_coco.onnx")
    code, err = run(["replay", "--config", str(cfg), "--source", str(vtest), "--reference",
                     str(tmp_path / "ref.json"), "--out", str(tmp_path / "o.jsonl")], capsys)
    assert code == 1 and "not valid JSON" in err
    assert_one_line(err)


@pytest.mark.parametrize(("damage", "words"), [
    (lambda d: d["numeric"]["brightness"]["hist"]["counts"].__setitem__(0, -1), ">= 0"),
    (lambda d: d.__setitem__("source", "cam\u0000"), "source"),
    (lambda d: d.__setitem__("frames", 2**64), "frames"),
    (lambda d: d.__setitem__("extra", 1), "unknown field `extra`"),
    (lambda d: d.__setitem__("schema", "edgewatch.summary/1"), "not an edgewatch reference"),
    (lambda d: d.pop("schema"), "not an edgewatch reference"),
    (lambda d: d.__setitem__("schema", "edgewatch.unknown/0"), "not an edgewatch reference"),
])
def test_profile_out_of_its_contract(tmp_path: Path, assets: Path, vtest: Path,
                                     ssd_reference: ReferenceProfile, damage: Any, words: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = ssd_reference.to_dict()
    damage(data)
    (tmp_path / "ref.json").write_text(json.dumps(data))
    cfg = write_config(tmp_path / "a.toml", assets / "models/ssdlite_mobilenet_v2_coco.onnx")
    code, err = run(["replay", "--config", str(cfg), "--source", str(vtest), "--reference",
                     str(tmp_path / "ref.json"), "--out", str(tmp_path / "o.jsonl")], capsys)
    assert code == 1 and words in err, err
    assert "damaged" in err or "not an edgewatch reference" in err
    assert_one_line(err)
