from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_voc07 import planted

from orl.evaluate.lowshot import evaluate_lowshot, format_lowshot, sample_lowshot, sample_seed
from orl.evaluate.voc07 import read_split


def test_sample_has_k_positives_and_19k_negatives_never_difficult(voc_root: Path) -> None:
    labels = read_split(voc_root, "trainval").labels
    s = sample_lowshot(labels, k=2, seed=7)
    assert s.k == 2 and s.seed == 7
    for c in range(20):
        rows, y = s.rows[c], s.targets[c]
        assert len(set(rows.tolist())) == len(rows) == 2 + 19 * 2
        assert (labels[rows[y == 1], c] == 1).all() and (y == 1).sum() == 2
        assert (labels[rows[y == -1], c] == -1).all()  # no difficult-only image drawn


def test_sampling_is_seeded(voc_root: Path) -> None:
    labels = read_split(voc_root, "trainval").labels
    a, b = sample_lowshot(labels, 1, 3), sample_lowshot(labels, 1, 3)
    c = sample_lowshot(labels, 1, 4)
    assert all(np.array_equal(x, y) for x, y in zip(a.rows, b.rows, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.rows, c.rows, strict=True))


def test_too_few_positives_is_reported(voc_root: Path) -> None:
    labels = read_split(voc_root, "trainval").labels
    with pytest.raises(ValueError, match="positives"):
        sample_lowshot(labels, k=50, seed=0)


def test_lowshot_report_records_seeds_and_statistics(voc_root: Path) -> None:
    report = evaluate_lowshot(
        voc_root,
        planted(voc_root),
        ["feat5"],
        shots=(1, 2),
        n_samples=3,
        base_seed=5,
        costs=(0.1, 1.0),
    )
    per_k = report["layers"]["feat5"]
    assert per_k["2"]["seeds"] == [sample_seed(5, 2, i) for i in range(3)]
    assert len(set(per_k["1"]["seeds"] + per_k["2"]["seeds"])) == 6
    for stats in per_k.values():
        assert stats["mean"] == pytest.approx(np.mean(stats["samples"]))
        assert stats["min"] <= stats["mean"] <= stats["max"]
        # planted features: near-perfect even at k = 1 (a lone positive may carry a second class)
        assert stats["mean"] > 0.9
    assert report["cost_selection"].startswith("CV")


def test_test_set_cost_selection_is_labelled(voc_root: Path) -> None:
    report = evaluate_lowshot(
        voc_root, planted(voc_root, shuffle_labels=True), ["feat5"], shots=(1,), n_samples=2,
        costs=(0.01, 1.0), select_on_test=True,
    )  # fmt: skip
    assert "test set" in report["cost_selection"] and "optimistic" in report["cost_selection"]
    assert "test set" in format_lowshot(report)
    assert report["layers"]["feat5"]["1"]["mean"] < 0.6
