"""Per-frame anomaly score: a robust Mahalanobis distance against the reference.

Each per-frame feature is centred on the reference median and scaled by the reference's
MAD (times 1.4826, so it estimates the SD for normal data, floored to avoid dividing by
nearly zero); the distance uses the inverse of the reference correlation matrix of those
robust z-scores, shrunk towards the identity (Ledoit-Wolf style, fixed weight) so that it
stays well conditioned. The threshold is the reference's own 99.5th percentile of scores,
so about 0.5 % of reference frames are flagged (the calibration is stored with the model).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
MAD_TO_SD = 1.4826
SHRINKAGE = 0.1
Z_CLIP = 1e3
MISSING_Z = 10.0
"""A feature the reference always had but this frame lacks (say, no detection at all when
every reference frame had one) counts as this many robust SDs away."""
CALIBRATION_QUANTILE = 0.995


@dataclasses.dataclass
class AnomalyModel:
    features: list[str]
    center: FloatArray
    scale: FloatArray
    precision: FloatArray
    threshold: float

    def score(self, values: dict[str, float | np.ndarray]) -> float:
        """Distance of one frame from the reference (missing features: MISSING_Z)."""
        get = values.get
        x = np.array([float(get(f, math.nan)) for f in self.features],  # type: ignore[arg-type]
                     np.float64)
        z = (x - self.center) / self.scale
        # np.clip's bounds as two ufuncs in place (its Python wrapper costs more than the
        # clipping; NaN stays NaN either way)
        np.minimum(np.maximum(z, -Z_CLIP, out=z), Z_CLIP, out=z)
        z[np.isnan(z)] = MISSING_Z
        return float(math.sqrt(max(float(z @ self.precision @ z), 0.0) / len(self.features)))

    def scores(self, matrix: FloatArray) -> FloatArray:
        z = np.clip((matrix - self.center) / self.scale, -Z_CLIP, Z_CLIP)
        d2 = np.einsum("ij,jk,ik->i", z, self.precision, z)
        return np.sqrt(np.maximum(d2, 0.0) / len(self.features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": self.features, "center": self.center.tolist(),
            "scale": self.scale.tolist(), "precision": self.precision.tolist(),
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnomalyModel:
        return cls(list(d["features"]), np.asarray(d["center"], np.float64),
                   np.asarray(d["scale"], np.float64), np.asarray(d["precision"], np.float64),
                   float(d["threshold"]))


def fit(features: list[str], matrix: FloatArray, floors: FloatArray) -> AnomalyModel | None:
    """Fit on an (n frames x d features) matrix; None when too few frames or features."""
    finite = np.all(np.isfinite(matrix), axis=0)
    center = np.median(matrix, axis=0)
    mad = np.median(np.abs(matrix - center), axis=0) * MAD_TO_SD
    keep = finite & (np.maximum(mad, matrix.std(axis=0)) > 0)
    if matrix.shape[0] < 20 or not keep.any():
        return None
    names = [f for f, k in zip(features, keep) if k]
    m, center = matrix[:, keep], center[keep]
    scale = np.maximum(np.maximum(mad[keep], floors[keep]), 1e-12)
    z = np.clip((m - center) / scale, -Z_CLIP, Z_CLIP)
    corr = np.corrcoef(z, rowvar=False) if z.shape[1] > 1 else np.ones((1, 1))
    corr = np.nan_to_num(np.atleast_2d(corr))
    shrunk = (1 - SHRINKAGE) * corr + SHRINKAGE * np.eye(corr.shape[0])
    precision = np.linalg.pinv(shrunk)
    model = AnomalyModel(names, center, scale, precision, math.inf)
    model.threshold = float(np.quantile(model.scores(m), CALIBRATION_QUANTILE))
    return model
