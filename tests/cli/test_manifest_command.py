"""``edgewatch manifest`` (edgewatch.agent.deployment through edgewatch.cli.agent_commands):
the deployment manifest of the real SSD model and a real reference, as JSON and Markdown."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnxruntime
import pytest

from edgewatch import FEATURE_SET_VERSION, __version__
from edgewatch.agent.deployment import JSON_NAME, MARKDOWN_NAME, SCHEMA, manifest_markdown
from edgewatch.agent.window.reference import ReferenceProfile
from edgewatch.cli import main

FIELDS = {"schema", "deployed", "deployed_utc", "device", "model", "preprocessing", "labels",
          "thresholds", "reference", "owner", "training_data", "evaluation", "notes",
          "versions", "config"}

DEPLOYMENT = '''
[deployment]
model_version = "2.3.0"
owner = "vision-team@example.com"
training_data = "COCO 2017 train | 118k images"
notes = "pedestrian counting at the station entrance"

[deployment.evaluation]
mAP = 0.22
recall_person = 0.61
'''


def write_config(tmp_path: Path, assets: Path, reference: Path, extra: str = "") -> Path:
    model = assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"
    labels = assets / "models" / "coco_labels.txt"
    path = tmp_path / "agent.toml"
    path.write_text(f'[device]\nid = "cam-9"\nfleet = "station"\n\n'
                    f'[model]\npath = "{model}"\nlabels = "{labels}"\n\n'
                    f'[model.postprocess]\nscore_threshold = 0.45\n\n'
                    f'[reference]\npath = "{reference}"\n{extra}')
    return path


@pytest.fixture
def saved_reference(tmp_path: Path, ssd_reference: ReferenceProfile) -> Path:
    path = tmp_path / "reference.json"
    ssd_reference.save(path)
    return path


def test_the_manifest_of_the_real_model_and_reference(
        tmp_path: Path, assets: Path, saved_reference: Path, ssd_reference: ReferenceProfile,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, assets, saved_reference, DEPLOYMENT)
    out = tmp_path / "manifest"
    assert main(["manifest", "--config", str(config), "--out", str(out)]) == 0
    model_file = assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"
    sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert sha[:12] in capsys.readouterr().out

    m = json.loads((out / JSON_NAME).read_text(encoding="utf-8"))
    assert set(m) == FIELDS and m["schema"] == SCHEMA
    assert m["device"] == {"id": "cam-9", "fleet": "station"}
    assert m["model"] == {"name": model_file.name, "version": "2.3.0", "sha256": sha,
                          "bytes": model_file.stat().st_size, "path": str(model_file),
                          "adapter": "ssd", "input_name": ""}
    assert m["preprocessing"]["dtype"] == "uint8" and m["preprocessing"]["layout"] == "NHWC"
    assert m["labels"]["offset"] == 1 and m["labels"]["names"][0] == "person"
    assert m["labels"]["count"] >= 80 and len(m["labels"]["sha256"]) == 64
    assert m["thresholds"]["score_threshold"] == 0.45
    ref = m["reference"]
    assert ref["id"] == ssd_reference.id and ref["model_sha256"] == sha
    assert ref["path"] == str(saved_reference)
    assert (ref["source"], ref["frames"]) == (ssd_reference.source, ssd_reference.frames)
    assert ref["feature_set_version"] == FEATURE_SET_VERSION
    assert m["owner"] == "vision-team@example.com"
    assert m["training_data"] == "COCO 2017 train | 118k images"
    assert m["evaluation"] == {"mAP": 0.22, "recall_person": 0.61}
    assert m["versions"] == {"edgewatch": __version__, "onnxruntime": onnxruntime.__version__,
                             "feature_set": FEATURE_SET_VERSION}
    assert m["config"] == {"path": str(config),
                           "sha256": hashlib.sha256(config.read_bytes()).hexdigest()}
    assert m["deployed_utc"].startswith("20")

    md = (out / MARKDOWN_NAME).read_text(encoding="utf-8")
    assert md == manifest_markdown(m)
    assert md.startswith(f"# Deployment manifest: {model_file.name} 2.3.0\n")
    for value in (sha, ssd_reference.id, "vision-team@example.com", "| evaluation: mAP | 0.22 |",
                  "COCO 2017 train \\| 118k images", ssd_reference.source, __version__,
                  onnxruntime.__version__, "| score_threshold | 0.45 |", "person"):
        assert value in md, value
    assert "Not filled" not in md


def test_unfilled_fields_are_flagged_and_a_sentence_evaluation_is_kept(
        tmp_path: Path, assets: Path, saved_reference: Path) -> None:
    config = write_config(tmp_path, assets, saved_reference,
                          '\n[deployment]\nevaluation = "see eval/2026-01.pdf"\n')
    assert main(["manifest", "--config", str(config), "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / JSON_NAME).read_text(encoding="utf-8"))
    assert m["evaluation"] == "see eval/2026-01.pdf" and m["model"]["version"] == ""
    md = (tmp_path / MARKDOWN_NAME).read_text(encoding="utf-8")
    assert "| evaluation | see eval/2026-01.pdf |" in md
    assert "Not filled in the configuration's [deployment] section: model_version, owner, " \
           "training_data." in md


def test_a_reference_of_another_set_up_is_refused(
        tmp_path: Path, assets: Path, saved_reference: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, assets, saved_reference,
                          "\n[features]\nanalysis_width = 128\n")
    assert main(["manifest", "--config", str(config), "--out", str(tmp_path / "m")]) == 1
    assert "analysis_width" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
