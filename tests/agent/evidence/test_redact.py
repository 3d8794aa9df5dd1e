"""Face redaction with the real CenterFace model, on a real face (tests/data/astronaut.jpg:
NASA's portrait of Eileen Collins, public domain, as shipped in scikit-image's data)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from edgewatch.agent.evidence.capture import EvidenceCapture, Identity
from edgewatch.agent.evidence.redact import FaceRedactor, RedactionError
from edgewatch.agent.evidence.shapes import dynamic_dims
from edgewatch.agent.evidence.store import EvidenceStore
from edgewatch.agent.measure.frame import FrameMeasurer
from edgewatch.agent.measure.image import ImageFeatureExtractor
from edgewatch.agent.measure.outputs import OutputFeatureExtractor
from edgewatch.agent.records import Frame
from edgewatch.clock import ManualClock
from edgewatch.config.maintenance import EvidenceConfig
from edgewatch.contracts import Alert
from edgewatch.contracts.alert import Span
from support.paths import DATA

FACE = DATA / "astronaut.jpg"


@pytest.fixture(scope="module")
def centerface(assets: Path) -> Path:
    return assets / "models" / "centerface.onnx"


def test_dynamic_dims_frees_the_declared_input(centerface: Path) -> None:
    model = onnx.load_from_string(dynamic_dims(centerface.read_bytes()))
    onnx.checker.check_model(model)
    (real,) = model.graph.input  # the weights listed as inputs are gone
    dims = real.type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [0, 3, 0, 0] and all(
        d.dim_param for i, d in enumerate(dims) if i != 1)
    assert all(d.dim_param for o in model.graph.output
               for i, d in enumerate(o.type.tensor_type.shape.dim) if i != 1)


def _variance(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    return float(cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY).var())


def _detail(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    grey = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _capture_one(tmp_path: Path, redactor: FaceRedactor, image: np.ndarray
                 ) -> tuple[EvidenceCapture, EvidenceStore]:
    ev = EvidenceConfig(enabled=True, pre_frames=1, post_frames=0, baseline_per_hour=0.0,
                        near_threshold_per_hour=0.0, jpeg_quality=95)
    store = EvidenceStore(tmp_path / "ev", 1 << 30)
    capture = EvidenceCapture(ev, store, Identity("cam", "sha", "ref"), redactor=redactor,
                              clock=ManualClock())
    frame = Frame(0, 0.0, image)
    m = FrameMeasurer(ImageFeatureExtractor(160), OutputFeatureExtractor(0.4, 0.1))(frame, None)
    capture.observe(frame, None, m, (0.0, 10.0))
    capture.alert(Alert(id="a", rule="quality", state="firing", severity="critical",
                        window=Span(0.0, 10.0), since=0.0, updated=0.0, metric="quality"))
    assert capture.drain()
    return capture, store


def test_a_real_face_is_found_and_blurred_before_writing(tmp_path: Path,
                                                          centerface: Path) -> None:
    image = cv2.imread(str(FACE))
    redactor = FaceRedactor(str(centerface), width=384, height=384)
    faces = redactor.detect(image)
    assert len(faces) == 1 and faces[0].score > 0.8
    f = faces[0]
    box = (int(f.x1), int(f.y1), int(f.x2), int(f.y2))
    assert 40 < f.x2 - f.x1 < 120 and 40 < f.y2 - f.y1 < 140  # her face, ~70 px wide
    before = _variance(image, box)
    capture, store = _capture_one(tmp_path, redactor, image.copy())
    (row,) = store.frames(alert_id="a")
    written = cv2.imread(str(tmp_path / "ev" / row["image"]))
    after = _variance(written, box)
    assert before > 500 and after < before / 2  # coarse blocks: the collar's dark edge stays
    assert _detail(written, box) < _detail(image, box) / 10  # no feature survives
    outside = (0, 300, 384, 384)  # the rest of the picture is kept
    assert abs(_variance(written, outside) - _variance(image, outside)) < 0.2 * _variance(
        image, outside)
    sidecar = store.sidecar(row["id"])
    assert sidecar["redacted"] is True and sidecar["faces"] == 1
    assert sidecar["redactor_sha256"] == redactor.model_sha256 and len(redactor.model_sha256) == 64
    capture.close()


def test_a_failing_redactor_writes_nothing(tmp_path: Path, assets: Path) -> None:
    # a real model that is not a face detector: onnxruntime refuses its input, every frame
    wrong = FaceRedactor(str(assets / "models" / "ssdlite_mobilenet_v2_coco.onnx"),
                         width=320, height=320)
    image = cv2.imread(str(FACE))
    with pytest.raises(RedactionError):
        wrong.detect(image)
    capture, store = _capture_one(tmp_path, wrong, image)
    assert capture.totals["redaction_failed"] == 1 and capture.totals["captured"] == 0
    assert store.frames() == [] and list((tmp_path / "ev").rglob("*.jpg")) == []
    capture.close()
    with pytest.raises(RedactionError):
        FaceRedactor(str(tmp_path / "missing.onnx"))
