from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orl.evaluate.features import l2_normalize
from orl.evaluate.inputs import random_weights
from orl.evaluate.knn import knn_scores, topk_accuracy
from orl.evaluate.probe import (
    format_probe_table,
    knn_probe,
    label_matrix,
    probe_labelled_images,
    svm_probe,
)


def clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    return l2_normalize(np.eye(3)[labels] + 0.1 * rng.standard_normal((n, 3))), labels


def test_knn_classifies_clusters() -> None:
    train, train_y = clusters(60, 0)
    test, test_y = clusters(30, 1)
    acc = topk_accuracy(knn_scores(train, train_y, test, 3, k=5), test_y, (1, 2))
    assert acc["top1"] == 1.0 and acc["top2"] == 1.0


def test_knn_votes_are_weighted_by_similarity() -> None:
    # one very close neighbour of class 1 outweighs two far ones of class 0 at T = 0.07
    train = l2_normalize(np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]]))
    scores = knn_scores(train, np.array([1, 0, 0]), l2_normalize(np.array([[1.0, 0.05]])), 2, k=3)
    assert scores[0].argmax() == 1
    expected = np.exp(train @ l2_normalize(np.array([[1.0, 0.05]]))[0] / 0.07)
    assert scores[0, 1] == pytest.approx(expected[0], rel=1e-4)


def test_label_matrix() -> None:
    classes, y = label_matrix([["cat"], ["dog", "cat"], []])
    assert classes == ["cat", "dog"] and y.tolist() == [[1, -1], [1, 1], [-1, -1]]


def test_svm_and_knn_probes_on_planted_and_shuffled_labels() -> None:
    x, labels = clusters(30, 2)
    y = np.where(np.eye(3)[labels] == 1, 1, -1)
    assert np.mean(svm_probe(x, y)) == pytest.approx(1.0)
    assert np.mean(knn_probe(x, y)) == pytest.approx(1.0)
    shuffled = np.random.default_rng(0).permutation(y)
    assert np.mean(svm_probe(x, shuffled)) < 0.75


def test_probe_labelled_images_compares_backbones(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(12):
        colour = [(230, 20, 20), (20, 230, 20), (20, 20, 230)][i % 3]
        pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (32, 32, 3)), 0, 255)
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(pixels.astype(np.uint8)).save(paths[-1])
        labels.append([["red"], ["green"], ["blue"]][i % 3])
    nets = {
        "random-a": random_weights("resnet18", 0).build_backbone(),
        "random-b": random_weights("resnet18", 1).build_backbone(),
    }
    rows = probe_labelled_images(nets, paths, labels)
    assert [r.name for r in rows] == ["random-a", "random-b"]
    assert all(r.n_classes == 3 and r.svm_map > 0.9 and r.knn_map > 0.9 for r in rows)
    assert "random-b" in format_probe_table(rows)
