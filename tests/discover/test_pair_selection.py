"""RoI pair selection (sec. 3.1 (iii)) against a brute-force reference."""

from __future__ import annotations

import numpy as np

from orl.discover.pairs import num_pairs, top_pairs


def brute_force(fq: np.ndarray, fk: np.ndarray, ratio: float) -> list[tuple[int, int]]:
    scored = []
    for a in range(len(fq)):
        for b in range(len(fk)):
            s = sum(float(x) * float(y) for x, y in zip(fq[a], fk[b], strict=True))
            scored.append((-s, a * len(fk) + b, (a, b)))
    scored.sort()
    n = max(1, int(ratio * len(fq)))
    return [p for _, _, p in scored[:n]]


def test_count_is_ten_percent_of_query_boxes_at_least_one() -> None:
    assert [num_pairs(b, 0.1) for b in (1, 9, 10, 19, 20, 100)] == [1, 1, 1, 1, 2, 10]
    assert num_pairs(37, 0.2) == 7


def test_equals_brute_force_with_ties() -> None:
    rng = np.random.default_rng(1)
    for trial in range(20):
        bq, bk = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        # eighths in 4 dims: dot products are exact in float32 and ties are frequent
        fq = rng.integers(-2, 3, (bq, 4)).astype(np.float32) / 8
        fk = rng.integers(-2, 3, (bk, 4)).astype(np.float32) / 8
        ratio = (0.1, 0.2, 0.5)[trial % 3]
        pairs, sims = top_pairs(fq, fk, ratio)
        assert [tuple(p) for p in pairs.tolist()] == brute_force(fq, fk, ratio)
        assert np.all(np.diff(sims) <= 0)
        np.testing.assert_array_equal(sims, (fq[pairs[:, 0]] * fk[pairs[:, 1]]).sum(1))


def test_pairs_may_repeat_a_box_no_one_to_one() -> None:
    fq = np.array([[1.0, 0.0]] * 20, np.float32)
    fk = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    pairs, _ = top_pairs(fq, fk, 0.1)
    assert pairs.tolist() == [[0, 0], [1, 0]]  # box 0 of k twice; ties by flat index
