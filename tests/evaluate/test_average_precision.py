from __future__ import annotations

import numpy as np
import pytest

from orl.evaluate.average_precision import all_point_ap, precision_recall, voc_average_precision


def test_hand_computed_ap_interpolates_precision() -> None:
    # ranks: + - + -  -> precision 1, 1/2, 2/3, 1/2 at recall .5 .5 1 1; envelope 1 then 2/3
    ap = voc_average_precision(np.array([1, -1, 1, -1]), np.array([0.9, 0.8, 0.7, 0.6]))
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_difficult_images_are_excluded_not_negative() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    with_difficult = voc_average_precision(np.array([1, 0, -1, 1]), scores)
    as_negative = voc_average_precision(np.array([1, -1, -1, 1]), scores)
    assert with_difficult == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert as_negative == pytest.approx(0.5 + 0.5 * 0.5)


def test_tied_scores_count_as_one_rank_whatever_the_order() -> None:
    # one positive and one negative tied: a single point (P 1/2, R 1) -> AP 1/2 both ways round
    assert voc_average_precision(np.array([1, -1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert voc_average_precision(np.array([-1, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    # the tie sits after a clean hit: P = 1 at R = 1/2, then 2/3 at R = 1
    ap = voc_average_precision(np.array([1, -1, 1]), np.array([0.9, 0.4, 0.4]))
    assert ap == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_all_point_ap_matches_direct_definition() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        labels = np.where(rng.random(50) < 0.3, 1, -1)
        labels[0] = 1
        scores = rng.random(50)
        order = np.argsort(-scores)
        hits = labels[order] == 1
        precision_at = np.cumsum(hits) / np.arange(1, 51)
        # direct: mean over positives of the best precision at that rank or deeper
        direct = np.mean([precision_at[r:].max() for r in np.flatnonzero(hits)])
        assert voc_average_precision(labels, scores) == pytest.approx(direct)


def test_perfect_and_reversed_rankings() -> None:
    labels = np.array([1, 1, -1, -1, -1])
    assert voc_average_precision(labels, np.array([5, 4, 3, 2, 1])) == pytest.approx(1.0)
    # reversed: positives at ranks 4 and 5 -> (1/4 envelope 2/5) ... direct value
    assert voc_average_precision(labels, np.array([1, 2, 3, 4, 5])) == pytest.approx(
        0.5 * 0.4 + 0.5 * 0.4
    )


def test_precision_recall_and_area_helpers() -> None:
    precision, recall = precision_recall(np.array([1, -1, 1]), np.array([3.0, 2.0, 1.0]))
    assert np.allclose(precision, [1, 0.5, 2 / 3]) and np.allclose(recall, [0.5, 0.5, 1])
    assert all_point_ap(precision, recall) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_no_positive_is_an_error() -> None:
    with pytest.raises(ValueError):
        voc_average_precision(np.array([-1, 0]), np.array([1.0, 2.0]))
