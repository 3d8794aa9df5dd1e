"""What the shadow compares between the current model and the candidate, and the gates.

Per frame: the two outputs (agreement: detections matched one to one by IoU >= 0.5 and the
same class, pooled into an F1; classifiers: the same top-1 class), each model's inference
time and best score. Over the shadow: the p95 latency ratio, the agreement, the ratio of the
mean best scores (a label-free estimate of how sure the candidate is where the current
model is) and the Wasserstein-1 distance between the best-score distributions.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgewatch.agent.records import Classification, Detections, ModelOutput
from edgewatch.config.maintenance import UpdateConfig
from edgewatch.contracts.update_status import Gate

IOU_MATCH = 0.5


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4] (x1, y1, x2, y2)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def matched(a: Detections, b: Detections, threshold: float) -> tuple[int, int, int]:
    """Detections at or above ``threshold`` in ``a`` and ``b``, and how many pair up one to
    one (greedy on IoU, highest first) with IoU >= 0.5 and the same class."""
    ka, kb = a.scores >= threshold, b.scores >= threshold
    boxes_a, boxes_b = a.boxes[ka], b.boxes[kb]
    cls_a, cls_b = a.classes[ka], b.classes[kb]
    n_a, n_b = len(boxes_a), len(boxes_b)
    if not n_a or not n_b:
        return n_a, n_b, 0
    iou = iou_matrix(boxes_a.astype(np.float64), boxes_b.astype(np.float64))
    iou[cls_a[:, None] != cls_b[None, :]] = 0.0
    pairs = 0
    while True:
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        if iou[i, j] < IOU_MATCH:
            break
        pairs += 1
        iou[i, :] = 0.0
        iou[:, j] = 0.0
    return n_a, n_b, pairs


def best_score(output: ModelOutput) -> float:
    if isinstance(output, Detections):
        return float(output.best_score) if len(output.scores) or output.best_score else 0.0
    if isinstance(output, Classification):
        return float(output.probs.max()) if output.probs.size else 0.0
    return 0.0


def output_size(output: ModelOutput, threshold: float) -> float:
    """Detections at or above the threshold (classifiers: the best score): what collapses
    when a model breaks."""
    if isinstance(output, Detections):
        return float(np.count_nonzero(output.scores >= threshold))
    return best_score(output)


@dataclasses.dataclass
class Comparison:
    """The shadow's running tally."""

    threshold: float
    frames: int = 0
    current_ms: list[float] = dataclasses.field(default_factory=list)
    candidate_ms: list[float] = dataclasses.field(default_factory=list)
    current_best: list[float] = dataclasses.field(default_factory=list)
    candidate_best: list[float] = dataclasses.field(default_factory=list)
    candidate_sizes: list[float] = dataclasses.field(default_factory=list)
    detections: int = 0
    """Detections of both models (F1's denominator)."""
    pairs: int = 0
    top1_same: int = 0
    detector: bool = True

    def add(self, current: ModelOutput, candidate: ModelOutput, current_ms: float,
            candidate_ms: float) -> None:
        self.frames += 1
        self.current_ms.append(current_ms)
        self.candidate_ms.append(candidate_ms)
        self.current_best.append(best_score(current))
        self.candidate_best.append(best_score(candidate))
        self.candidate_sizes.append(output_size(candidate, self.threshold))
        if isinstance(current, Detections) and isinstance(candidate, Detections):
            n_a, n_b, pairs = matched(current, candidate, self.threshold)
            self.detections += n_a + n_b
            self.pairs += pairs
        elif isinstance(current, Classification) and isinstance(candidate, Classification):
            self.detector = False
            same = current.probs.size and candidate.probs.size and int(
                np.argmax(current.probs)) == int(np.argmax(candidate.probs))
            self.top1_same += int(bool(same))

    @property
    def agreement(self) -> float:
        if not self.detector:
            return self.top1_same / self.frames if self.frames else 0.0
        return 2.0 * self.pairs / self.detections if self.detections else 1.0

    @property
    def latency_ratio(self) -> float:
        cur = float(np.percentile(self.current_ms, 95)) if self.current_ms else 0.0
        new = float(np.percentile(self.candidate_ms, 95)) if self.candidate_ms else 0.0
        return new / cur if cur > 0 else 1.0

    @property
    def confidence_ratio(self) -> float:
        cur = float(np.mean(self.current_best)) if self.current_best else 0.0
        new = float(np.mean(self.candidate_best)) if self.candidate_best else 0.0
        return new / cur if cur > 0 else (1.0 if new == 0 else float("inf"))

    @property
    def score_shift(self) -> float:
        """Wasserstein-1 between the best-score samples (same size: sorted differences)."""
        if not self.current_best:
            return 0.0
        a, b = np.sort(self.current_best), np.sort(self.candidate_best)
        return float(np.mean(np.abs(a - b)))

    @property
    def candidate_output_size(self) -> float:
        return float(np.mean(self.candidate_sizes)) if self.candidate_sizes else 0.0

    def gates(self, cfg: UpdateConfig) -> list[Gate]:
        conf = min(self.confidence_ratio, 1e6)
        return [
            Gate("latency_ratio", self.latency_ratio, cfg.max_latency_ratio,
                 self.latency_ratio <= cfg.max_latency_ratio),
            Gate("agreement", self.agreement, cfg.min_agreement,
                 self.agreement >= cfg.min_agreement),
            Gate("confidence_ratio", conf, cfg.min_confidence_ratio,
                 conf >= cfg.min_confidence_ratio),
            Gate("score_shift", self.score_shift, cfg.max_score_shift,
                 self.score_shift <= cfg.max_score_shift),
        ]


def failures(gates: list[Gate]) -> str:
    """The failed gates, one phrase each."""
    words = {"latency_ratio": ("p95 latency ratio", ">"), "agreement": ("agreement", "<"),
             "confidence_ratio": ("confidence ratio", "<"),
             "score_shift": ("score shift", ">"), "error_rate": ("error rate", ">"),
             "output_ratio": ("outputs per frame vs shadow", "<")}
    out = []
    for g in gates:
        if not g.passed:
            word, op = words.get(g.name, (g.name, "vs"))
            out.append(f"{word} {g.value:.3g} {op} {g.limit:g}")
    return "; ".join(out)
