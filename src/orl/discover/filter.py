"""The proposal filter of sec. 3.1 (ii) and footnote 2, exactly as the authors' greedy pass."""

from __future__ import annotations

import numpy as np


def iou_xywh(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one xywh box with each row of `others` (continuous coordinates, no +1)."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    y2 = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    iou: np.ndarray = inter / np.maximum(union, 1e-12)
    return iou


def filter_proposals(
    boxes: np.ndarray,
    min_size: int = 96,
    max_aspect: float = 3.0,
    max_iou: float = 0.5,
    max_keep: int = 100,
) -> tuple[np.ndarray, bool]:
    """Keep boxes in proposal order: drop `w < min_size or h < min_size`, drop
    `max(w/h, h/w) > max_aspect` (exactly `max_aspect` is kept), drop IoU > `max_iou` with any
    already kept box, stop at `max_keep`.

    Returns (kept (B, 4) int32 xywh, fell_back). If nothing survives, the first raw proposal is
    kept (`fell_back` True) so that every image has a box; `boxes` must then be non-empty.
    """
    raw = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    if len(raw) == 0:
        raise ValueError("filter_proposals needs at least one proposal")
    kept = np.zeros((max_keep, 4), dtype=np.float64)
    n = 0
    for box in raw:  # the greedy pass: each decision depends on what was kept before
        w, h = int(box[2]), int(box[3])
        if w < min_size or h < min_size or w <= 0 or h <= 0:
            continue
        if max(w / h, h / w) > max_aspect:
            continue
        if n and iou_xywh(box.astype(np.float64), kept[:n]).max() > max_iou:
            continue
        kept[n] = box
        n += 1
        if n == max_keep:
            break
    if n == 0:
        return raw[:1].astype(np.int32), True
    return kept[:n].astype(np.int32), False


def clip_to_image(boxes: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    """Clip xywh boxes to a `frame` = (width, height) image and drop those left empty.

    Selective-search boxes are always inside; COCO or imported boxes may stick out.
    """
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    x1 = np.clip(b[:, 0], 0, frame[0])
    y1 = np.clip(b[:, 1], 0, frame[1])
    x2 = np.clip(b[:, 0] + b[:, 2], 0, frame[0])
    y2 = np.clip(b[:, 1] + b[:, 3], 0, frame[1])
    out = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    return out[(out[:, 2] > 0) & (out[:, 3] > 0)].astype(np.int32)
