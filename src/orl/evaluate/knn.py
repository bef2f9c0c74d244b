"""Weighted k-nearest-neighbour probe on frozen, L2-normalised features (DINO, Caron et al. 2021).

Not one of the paper's protocols: a quick, training-free check of a representation. Each test
image votes with its k most similar training images (cosine similarity s), weighted exp(s / T);
k = 20 and T = 0.07 as in DINO.
"""

from __future__ import annotations

import numpy as np
import torch


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
    """Class scores (n_test, num_classes) of the weighted votes; features L2-normalised."""
    bank = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32))
    labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
    k = min(k, len(bank))
    out = []
    for start in range(0, len(test), chunk):
        queries = torch.from_numpy(
            np.ascontiguousarray(test[start : start + chunk], dtype=np.float32)
        )
        sims, idx = (queries @ bank.T).topk(k, dim=1)
        weights = (sims / temperature).exp()
        votes = torch.zeros(len(queries), num_classes, dtype=torch.float32)
        votes.scatter_add_(1, labels[idx], weights)
        out.append(votes)
    return torch.cat(out).numpy()


def topk_accuracy(
    scores: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Fraction of rows whose label is among the k best-scored classes, for each k."""
    order = np.argsort(-scores, axis=1, kind="stable")
    labels = np.asarray(labels)
    return {f"top{k}": float(np.mean((order[:, :k] == labels[:, None]).any(axis=1))) for k in ks}
