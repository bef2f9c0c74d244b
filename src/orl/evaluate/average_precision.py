"""VOC-style average precision for the SVM protocols (Goyal et al. 2019, as used in Tables 1, 2).

Labels follow VOC's ImageSets convention: 1 = present, -1 = absent, 0 = only difficult instances.
Difficult-only images are excluded from the ranking at test time. AP is the all-point interpolated
area (VOC2010+; `calculate_ap` in the Goyal benchmark): the precision envelope integrated over every
recall step.
"""

from __future__ import annotations

import numpy as np


def precision_recall(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall down the ranking by decreasing score, skipping label-0 images.

    Tied scores form one rank: the curve gets a point only after the whole tie, so the result does
    not depend on how a sort orders equal scores (the original depends on `argsort`'s order; with
    distinct scores both agree exactly).
    """
    keep = labels != 0
    positive = labels[keep] == 1
    ranked = scores[keep]
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise ValueError("average precision is undefined without a positive example")
    order = np.argsort(-ranked, kind="stable")
    positive, ranked = positive[order], ranked[order]
    tp = np.cumsum(positive)
    fp = np.cumsum(~positive)
    end_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    tp, fp = tp[end_of_tie], fp[end_of_tie]
    return tp / (tp + fp), tp / n_pos


def all_point_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the monotone precision envelope at every recall change (VOC2010+ AP)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


def voc_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP of one class: `labels` in {1, -1, 0} (0 ignored), higher score = more confident."""
    precision, recall = precision_recall(np.asarray(labels), np.asarray(scores, dtype=np.float64))
    return all_point_ap(precision, recall)
