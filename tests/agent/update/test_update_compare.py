"""The shadow's comparison (detections matched by IoU and class, the gates) and its frame
queue (drops when behind, never waits)."""

from __future__ import annotations

import numpy as np

from edgewatch.agent.records import Classification, Detections
from edgewatch.agent.update.compare import Comparison, failures, matched
from edgewatch.agent.update.shadow import FrameQueue
from edgewatch.config.maintenance import UpdateConfig


def dets(boxes: list[list[float]], classes: list[int], scores: list[float]) -> Detections:
    return Detections(boxes=np.array(boxes, np.float32).reshape(-1, 4),
                      scores=np.array(scores, np.float32),
                      classes=np.array(classes, np.int64),
                      best_score=max(scores, default=0.0))


def test_detections_match_one_to_one_by_iou_and_class() -> None:
    a = dets([[0, 0, .5, .5], [.5, .5, 1, 1], [0, .5, .5, 1]], [1, 1, 3], [.9, .8, .7])
    b = dets([[0, 0, .5, .45], [.5, .5, 1, 1], [0, .5, .5, 1]], [1, 2, 3], [.9, .8, .1])
    # box 1 matches (IoU 0.9), box 2 has another class, box 3 is below the threshold in b
    assert matched(a, b, 0.4) == (3, 2, 1)


def test_agreement_latency_and_confidence_gates() -> None:
    tally = Comparison(0.4)
    same = dets([[0, 0, .5, .5]], [1], [.9])
    moved = dets([[.5, .5, 1, 1]], [1], [.9])
    for _ in range(10):
        tally.add(same, moved, 10.0, 35.0)
    cfg = UpdateConfig()
    gates = {g.name: g for g in tally.gates(cfg)}
    assert gates["agreement"].value == 0.0 and not gates["agreement"].passed
    assert gates["latency_ratio"].value == 3.5 and not gates["latency_ratio"].passed
    assert gates["confidence_ratio"].passed and gates["score_shift"].passed
    assert failures(list(gates.values())) == "p95 latency ratio 3.5 > 2; agreement 0 < 0.5"


def test_classifiers_agree_on_the_top1_class() -> None:
    tally = Comparison(0.4)
    p = Classification(np.array([.1, .7, .2], np.float32))
    q = Classification(np.array([.6, .3, .1], np.float32))
    tally.add(p, p, 1.0, 1.0)
    tally.add(p, q, 1.0, 1.0)
    assert tally.agreement == 0.5


def test_the_frame_queue_drops_when_full() -> None:
    frames = FrameQueue(2)
    image = np.zeros((4, 4, 3), np.uint8)
    for _ in range(5):
        frames.offer(image)
    assert (frames.offered, frames.dropped) == (5, 3)
    assert frames.get(0.01) is not None and frames.get(0.01) is not None
    assert frames.get(0.01) is None
