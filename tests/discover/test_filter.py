"""The greedy proposal filter (sec. 3.1 (ii), footnote 2), rule by rule."""

from __future__ import annotations

import numpy as np

from orl.discover.filter import filter_proposals, iou_xywh


def keep(boxes: list[list[int]], **kw: float) -> list[list[int]]:
    kept, _ = filter_proposals(np.array(boxes), **kw)  # type: ignore[arg-type]
    return kept.tolist()


def test_min_size_drops_below_96_keeps_96() -> None:
    assert keep([[0, 0, 95, 200], [0, 300, 200, 95], [500, 500, 96, 96]]) == [[500, 500, 96, 96]]


def test_aspect_exactly_three_is_kept_above_is_dropped() -> None:
    boxes = [[0, 0, 289, 96], [0, 0, 96, 289], [1000, 0, 288, 96], [0, 1000, 96, 288]]
    assert keep(boxes) == [[1000, 0, 288, 96], [0, 1000, 96, 288]]


def test_iou_above_half_dropped_exactly_half_kept() -> None:
    a = [0, 0, 200, 200]
    half = [0, 0, 200, 100]  # IoU 0.5 with a
    more = [0, 0, 200, 101]  # IoU 0.505 with a
    assert iou_xywh(np.array(half, float), np.array([a], float))[0] == 0.5
    assert keep([a, more]) == [a]
    assert keep([a, half]) == [a, half]


def test_iou_is_checked_against_kept_boxes_only() -> None:
    a, b, c = [0, 0, 100, 100], [0, 0, 100, 99], [0, 0, 100, 98]
    small = [0, 0, 10, 10]  # dropped by size, must not shadow later boxes
    assert keep([small, a, b, c]) == [a]
    assert keep([c, b, a]) == [c]  # order decides which survives


def test_cap_keeps_the_first_in_proposal_order() -> None:
    boxes = [[i * 200, 0, 100, 100] for i in range(10)]
    assert keep(boxes, max_keep=3) == boxes[:3]


def test_fallback_keeps_first_raw_proposal() -> None:
    kept, fell_back = filter_proposals(np.array([[5, 6, 10, 10], [0, 0, 20, 500]]))
    assert fell_back
    assert kept.tolist() == [[5, 6, 10, 10]]
    _, normal = filter_proposals(np.array([[0, 0, 100, 100]]))
    assert not normal


def test_matches_a_plain_python_reference() -> None:
    rng = np.random.default_rng(0)
    xy = rng.integers(0, 400, (300, 2))
    wh = rng.integers(50, 300, (300, 2))
    boxes = np.concatenate([xy, wh], axis=1)

    def iou(p: list[int], q: list[int]) -> float:
        ix = max(0, min(p[0] + p[2], q[0] + q[2]) - max(p[0], q[0]))
        iy = max(0, min(p[1] + p[3], q[1] + q[3]) - max(p[1], q[1]))
        inter = ix * iy
        return inter / (p[2] * p[3] + q[2] * q[3] - inter)

    ref: list[list[int]] = []
    for b in boxes.tolist():
        w, h = b[2], b[3]
        if w < 96 or h < 96 or max(w / h, h / w) > 3:
            continue
        if any(iou(b, k) > 0.5 for k in ref):
            continue
        ref.append(b)
        if len(ref) == 100:
            break
    assert len(ref) > 5
    assert keep(boxes.tolist()) == ref
