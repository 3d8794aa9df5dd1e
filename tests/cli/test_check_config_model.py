"""``edgewatch check-config`` opens the model and checks it against the configuration: each
problem is one line on stderr and a non-zero exit (1 for the model, as at start-up; 2 for the
configuration file), labels that do not fit the model are a warning, ``--no-model`` checks
the file alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgewatch.cli import main
from support.onnx_models import constant_model, flattening_classifier_model, yolo_v8_output


def check_config(tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str],
                 *flags: str) -> tuple[int, str, str]:
    """Run check-config on a config whose [model] section is ``model``."""
    path = tmp_path / "agent.toml"
    path.write_text(f"[model]\n{model}")
    code = main(["check-config", *flags, str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith("20")]  # log lines
    assert len(lines) == 1, err
    assert lines[0].startswith("edgewatch: error: ")
    return lines[0].removeprefix("edgewatch: error: ")


def test_the_real_ssd_and_its_coco_labels(tmp_path: Path, assets: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    model = assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"
    section = f'path = "{model}"\nlabels = "{assets / "models" / "coco_labels.txt"}"\n'
    code, out, err = check_config(tmp_path, section, capsys)
    assert code == 0, err
    assert out == f"{tmp_path / 'agent.toml'}: ok (model {model}, adapter ssd, window 60 s)\n"
    assert err == ""
    code, out, err = check_config(tmp_path, section + "labels_offset = 0\n", capsys)
    assert code == 0 and "ok (model" in out
    assert err == ("edgewatch: warning: model.labels: 90 names for class ids 0..89 "
                   "(model.labels_offset = 0), but the ssd adapter's COCO ids start at 1 "
                   "('person'): set model.labels_offset = 1 (or remove it)\n")


def test_a_missing_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check_config(tmp_path, 'path = "nowhere.onnx"\n', capsys)
    assert (code, out) == (1, "")
    assert error_line(err) == f"model file not found: {tmp_path / 'nowhere.onnx'}"


def test_a_text_file_named_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.onnx").write_text("not a model, just text\n")
    code, out, err = check_config(tmp_path, 'path = "model.onnx"\n', capsys)
    assert (code, out) == (1, "")
    assert error_line(err) == (f"cannot load model {tmp_path / 'model.onnx'}: not an ONNX "
                               "model (protobuf parsing failed)")


def test_no_model_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check_config(tmp_path, 'adapter = "ssd"\n', capsys)
    assert (code, out) == (1, "")
    assert error_line(err) == ("model.path is not set (check-config --no-model checks the "
                               "file without a model)")


def test_no_model_checks_the_file_alone(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check_config(tmp_path, 'path = "nowhere.onnx"\n', capsys, "--no-model")
    assert code == 0, err
    assert out == (f"{tmp_path / 'agent.toml'}: ok (model {tmp_path / 'nowhere.onnx'} not "
                   "checked, adapter ssd, window 60 s)\n")
    code, _, err = check_config(tmp_path, 'adapter = "detr"\n', capsys, "--no-model")
    assert code == 2 and err.startswith("edgewatch: config error: model.adapter: expected")


@pytest.mark.parametrize(("shape", "extra", "message"), [
    ((1, 3, 224, 224), 'adapter = "classification"\n[model.preprocess]\ndtype = "float32"\n',
     "model input 'images' [1, 3, 224, 224] is NCHW: set model.preprocess.layout = \"NCHW\""),
    ((10, 3, 32, 32), 'adapter = "raw"\n[model.preprocess]\nlayout = "NCHW"\n'
                      'dtype = "float32"\nwidth = 32\nheight = 32\n',
     "model input 'images' [10, 3, 32, 32]: fixed batch size 10: edgewatch feeds one frame at "
     "a time; export the model with batch 1 or a dynamic batch"),
    ((1, 3, 64, 64), 'adapter = "classification"\n[model.preprocess]\nlayout = "NCHW"\n'
                     'dtype = "float32"\n',
     "model input 'images' [1, 3, 64, 64]: fixed height 64, but model.preprocess.height is 0: "
     "set model.preprocess.height = 64 (and width = 64)"),
    ((1, 3, 64, 64), 'adapter = "yolo"\n[model.preprocess]\nlayout = "NCHW"\n'
                     'dtype = "float32"\nwidth = 64\nheight = 64\n',
     "adapter 'yolo': expected the first output to be [1, 4+nc, N] or [1, N, 5+nc] (model "
     "outputs: output0 [1, 4])"),
], ids=["layout", "batch-10", "fixed-size", "adapter"])
def test_a_model_the_configuration_cannot_feed(tmp_path: Path, shape: tuple[int, ...],
                                               extra: str, message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    constant_model(tmp_path / "m.onnx", np.zeros((1, 4)), input_shape=shape)
    code, out, err = check_config(tmp_path, f'path = "m.onnx"\n{extra}', capsys)
    assert (code, out) == (1, "")
    assert error_line(err) == message


def test_a_size_onnxruntime_refuses_when_it_runs(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    flattening_classifier_model(tmp_path / "m.onnx", size=8)
    pre = '[model.preprocess]\nlayout = "NCHW"\ndtype = "float32"\nwidth = 16\nheight = 16\n'
    code, out, err = check_config(tmp_path, f'path = "m.onnx"\nadapter = "classification"\n'
                                            f'{pre}', capsys)
    assert (code, out) == (1, "")
    line = error_line(err)
    assert line.startswith("model input 'images' [1, 3, 'height', 'width']: a 16x16 NCHW "
                           "float32 frame fails in onnxruntime (Reshape node:")
    assert "set model.preprocess.width, height" in line


def test_labels_that_do_not_fit_are_a_warning(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    constant_model(tmp_path / "yolo.onnx",
                   yolo_v8_output([(10.0, 10.0, 4.0, 4.0)], [[0.0] * 80], anchors=100))
    (tmp_path / "labels.txt").write_text("\n".join(f"c{i}" for i in range(80)) + "\n")
    model = ('path = "yolo.onnx"\nadapter = "yolo"\nlabels = "labels.txt"\n{offset}'
             '[model.preprocess]\nlayout = "NCHW"\ndtype = "float32"\nwidth = 64\nheight = 64\n')
    code, out, err = check_config(tmp_path, model.format(offset=""), capsys)
    assert code == 0 and out.endswith("adapter yolo, window 60 s)\n") and err == ""
    code, out, err = check_config(tmp_path, model.format(offset="labels_offset = 1\n"), capsys)
    assert code == 0 and "ok (model" in out
    assert err == ("edgewatch: warning: model.labels: 80 names for class ids 1..80 "
                   "(model.labels_offset = 1), but the model has 80 classes, ids 0..79 (yolo "
                   "output 'output0' [1, 84, 100]: 84 - 4 box values): set "
                   "model.labels_offset = 0\n")


def test_an_unreadable_labels_file_is_a_configuration_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    constant_model(tmp_path / "cls.onnx", np.zeros((1, 4)), input_shape=(1, 3, 8, 8))
    model = ('path = "cls.onnx"\nadapter = "classification"\nlabels = "gone.txt"\n'
             '[model.preprocess]\nlayout = "NCHW"\ndtype = "float32"\nwidth = 8\nheight = 8\n')
    code, out, err = check_config(tmp_path, model, capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"edgewatch: config error: model.labels: cannot read "
                          f"{tmp_path / 'gone.txt'} (No such file")
