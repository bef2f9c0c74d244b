"""A quick side-by-side of several backbones on a small multi-label image set (for the demo).

Two probes on the same frozen features: the VOC07 SVM protocol on `feat5` (a few costs, cost by
inner CV, AP on the held-out part of an outer k-fold split) and a leave-one-out weighted kNN on the
global-pooled features. Both report mean AP over the classes with at least two positives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed
from sklearn.model_selection import KFold
from torch import nn

from orl.evaluate.average_precision import voc_average_precision
from orl.evaluate.features import extract_features, l2_normalize, svm_transform
from orl.evaluate.svm import choose_cost, cv_average_precision, fit_svm

PROBE_COSTS = (0.5**6, 0.5**3, 1.0)


@dataclass(frozen=True)
class ProbeRow:
    name: str
    svm_map: float
    knn_map: float
    n_classes: int


def label_matrix(labels: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """Class names (sorted) and an (N, C) matrix in {1, -1}."""
    classes = sorted({c for row in labels for c in row})
    y = -np.ones((len(labels), len(classes)), dtype=np.int32)
    for i, row in enumerate(labels):
        for c in row:
            y[i, classes.index(c)] = 1
    return classes, y


def _fold_ap(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, costs: Sequence[float]
) -> float:
    """Test AP of one class on one outer fold (NaN when the fold cannot be scored)."""
    n_pos = int((y[train] == 1).sum())
    if n_pos == 0 or n_pos == len(train) or not (y[test] == 1).any():
        return float("nan")
    folds = min(3, n_pos, len(train) - n_pos)
    cost = 1.0
    if folds >= 2:
        cost = choose_cost(
            [cv_average_precision(x[train], y[train], c, folds) for c in costs], costs
        )
    clf, _ = fit_svm(x[train], y[train], cost)
    return voc_average_precision(y[test], clf.decision_function(x[test]))


def svm_probe(
    x: np.ndarray,
    y: np.ndarray,
    costs: Sequence[float] = PROBE_COSTS,
    folds: int = 3,
    seed: int = 0,
    jobs: int = 1,
) -> list[float]:
    """Per class, the mean test AP over outer folds of a linear SVM (features L2-normalised).

    APs are averaged per fold, not computed on pooled out-of-fold scores: each fold's SVM has its
    own scale and bias, so pooled scores would not rank consistently.
    """
    x = l2_normalize(x)
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(x))
    parts = Parallel(n_jobs=jobs)(
        delayed(_fold_ap)(x, y[:, c], tr, te, costs) for c in range(y.shape[1]) for tr, te in splits
    )
    per_class = np.asarray(parts, dtype=np.float64).reshape(y.shape[1], len(splits))
    return [float(np.nanmean(row)) if np.isfinite(row).any() else 0.0 for row in per_class]


def knn_probe(x: np.ndarray, y: np.ndarray, k: int = 20, temperature: float = 0.07) -> list[float]:
    """Leave-one-out weighted kNN: class score = sum of exp(s / T) over neighbours holding it."""
    x = l2_normalize(x)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(x) - 1)
    idx = np.argsort(-sims, axis=1)[:, :k]
    weights = np.exp(np.take_along_axis(sims, idx, axis=1) / temperature)
    scores = np.einsum("nk,nkc->nc", weights, (y[idx] == 1).astype(np.float64))
    return [voc_average_precision(y[:, c], scores[:, c]) for c in range(y.shape[1])]


def probe_labelled_images(
    backbones: Mapping[str, nn.Module],
    images: Sequence[Path],
    labels: Sequence[Sequence[str]],
    folds: int = 3,
    seed: int = 0,
    batch_size: int = 32,
    device: torch.device | None = None,
    jobs: int = 1,
) -> list[ProbeRow]:
    """SVM and kNN mAP of every backbone on the same images (VOC07 input transform)."""
    _, y = label_matrix(labels)
    n_pos = (y == 1).sum(axis=0)
    kept = (n_pos >= 2) & (n_pos <= len(images) - 2)
    if not kept.any():
        raise ValueError("no class has at least two positive and two negative images")
    y = y[:, kept]
    rows = []
    for name, net in backbones.items():
        feats = extract_features(
            net, images, ["feat5", "avgpool"], svm_transform(), batch_size, device=device
        )
        svm = svm_probe(feats["feat5"], y, folds=folds, seed=seed, jobs=jobs)
        knn = knn_probe(feats["avgpool"], y)
        rows.append(ProbeRow(name, float(np.mean(svm)), float(np.mean(knn)), int(y.shape[1])))
    return rows


def format_probe_table(rows: Sequence[ProbeRow]) -> str:
    """A fixed-width table: backbone, SVM mAP, kNN mAP (percent), classes evaluated."""
    lines = [f"{'backbone':<20}{'SVM mAP':>10}{'kNN mAP':>10}{'classes':>9}"]
    lines += [
        f"{r.name:<20}{100 * r.svm_map:10.1f}{100 * r.knn_map:10.1f}{r.n_classes:9d}" for r in rows
    ]
    return "\n".join(lines)
