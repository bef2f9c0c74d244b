"""Weighted k-nearest-neighbour probe on frozen, L2-normalised features (DINO, Caron et al. 2021).

Not one of the paper's protocols: a quick, training-free check of a representation. Each test
image votes with its k most similar training images (cosine similarity s), weighted exp(s / T);
k = 20 and T = 0.07 as in DINO. `orl eval knn` and the training monitor (`evaluate/monitor.py`)
both score with it.
"""

from __future__ import annotations

import numpy as np
import torch

from orl.evaluate.average_precision import voc_average_precision


@torch.no_grad()
def knn_scores(
    train: np.ndarray,
    train_labels: np.ndarray,
    test: np.ndarray,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> np.ndarray:
    """Class scores (n_test, num_classes) of the weighted votes; features L2-normalised.

    `train_labels` is one class index per image, or for multi-label data (scenes with several
    objects) an (n_train, num_classes) 0/1 matrix: a neighbour then votes for each of its classes.
    """
    bank = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32))
    multi_label = np.ndim(train_labels) == 2
    labels = torch.from_numpy(
        np.asarray(train_labels, dtype=np.float32 if multi_label else np.int64)
    )
    k = min(k, len(bank))
    out = []
    for start in range(0, len(test), chunk):
        queries = torch.from_numpy(
            np.ascontiguousarray(test[start : start + chunk], dtype=np.float32)
        )
        sims, idx = (queries @ bank.T).topk(k, dim=1)
        weights = (sims / temperature).exp()
        if multi_label:
            votes = torch.einsum("qk,qkc->qc", weights, labels[idx])
        else:
            votes = torch.zeros(len(queries), num_classes, dtype=torch.float32)
            votes.scatter_add_(1, labels[idx], weights)
        out.append(votes)
    return torch.cat(out).numpy()


def top1_hit_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """Multi-label top-1: the fraction of rows whose best-scored class is one of their labels
    (`labels`: (n, num_classes) 0/1)."""
    best = np.argmax(scores, axis=1)
    return float(np.mean(np.asarray(labels)[np.arange(len(best)), best] > 0))


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in `labels` ((n, num_classes) 0/1) of the VOC all-point AP
    of `scores` (the scene benchmark's mAP)."""
    aps = [
        voc_average_precision(np.where(labels[:, c] > 0, 1, -1), scores[:, c])
        for c in range(labels.shape[1])
        if labels[:, c].any()
    ]
    return float(np.mean(aps)) if aps else float("nan")


def topk_accuracy(
    scores: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Fraction of rows whose label is among the k best-scored classes, for each k."""
    order = np.argsort(-scores, axis=1, kind="stable")
    labels = np.asarray(labels)
    return {f"top{k}": float(np.mean((order[:, :k] == labels[:, None]).any(axis=1))) for k in ks}
