from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_voc07 import planted

from orl.evaluate.lowshot import (
    evaluate_lowshot,
    format_lowshot,
    original_cost_rule,
    sample_lowshot,
    sample_seed,
)
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


def test_original_rule_keeps_one_cost_per_k_not_the_best_per_class_and_sample() -> None:
    # ap[sample, class, cost]: cost 0 suits class 0, cost 1 suits class 1.
    ap = np.array(
        [
            [[0.9, 0.5], [0.4, 0.8]],
            [[0.5, 0.7], [0.6, 0.6]],
        ]
    )
    best, maps = original_cost_rule(ap)
    # mAP per (sample, cost): [[0.65, 0.65], [0.55, 0.65]]; averaged over samples 0.60 vs 0.65.
    assert best == 1
    assert maps == pytest.approx([0.65, 0.65])
    per_class_and_sample = ap.max(axis=2).mean(axis=1)  # what a per-class choice would report
    assert per_class_and_sample == pytest.approx([0.85, 0.65])
    assert per_class_and_sample.mean() > maps.mean()


def test_original_rule_breaks_ties_towards_the_first_cost() -> None:
    best, maps = original_cost_rule(np.full((5, 20, 3), 0.5))
    assert best == 0 and maps == pytest.approx([0.5] * 5)


def test_test_set_rule_equals_a_run_with_its_chosen_cost_alone(voc_root: Path) -> None:
    features = planted(voc_root, shuffle_labels=True)
    costs = (0.001, 1.0)
    kwargs = {"shots": (2,), "n_samples": 2, "base_seed": 1}
    on_test = evaluate_lowshot(voc_root, features, ["feat5"], costs=costs, select_on_test=True,
                               **kwargs)["layers"]["feat5"]["2"]  # fmt: skip
    assert on_test["cost"] in costs
    alone = evaluate_lowshot(voc_root, features, ["feat5"], costs=(on_test["cost"],), **kwargs)
    # one cost for every class and sample: the same fits as a run that only knows that cost
    assert alone["layers"]["feat5"]["2"]["samples"] == on_test["samples"]


def test_test_set_cost_selection_is_labelled(voc_root: Path) -> None:
    report = evaluate_lowshot(
        voc_root, planted(voc_root, shuffle_labels=True), ["feat5"], shots=(1,), n_samples=2,
        costs=(0.01, 1.0), select_on_test=True,
    )  # fmt: skip
    assert "test set" in report["cost_selection"] and "optimistic" in report["cost_selection"]
    assert "test set" in format_lowshot(report)
    assert report["layers"]["feat5"]["1"]["cost"] in (0.01, 1.0)
    assert report["layers"]["feat5"]["1"]["mean"] < 0.6
