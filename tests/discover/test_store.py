"""The correspondence store: round trip, compact dtypes, refusals, cheap pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from orl.discover.store import CorrespondenceStore, StoreError, StoreMismatch, write_store


def small_store(path: Path) -> None:
    boxes = [
        np.array([[0, 0, 10, 10], [5, 5, 20, 30]]),
        np.array([[1, 2, 3, 4]]),
        np.array([[7, 7, 9, 9]] * 3),
    ]
    neighbours = np.array([[1, 2], [2, 0], [0, 1]])
    pair_index = [
        [np.array([[1, 0]]), np.array([[0, 2], [1, 1]])],
        [np.array([[0, 0]]), np.array([[0, 1]])],
        [np.array([[2, 1]]), np.array([[0, 0]])],
    ]
    sims = [[np.full(len(p), 0.5) for p in row] for row in pair_index]
    write_store(path, boxes, neighbours, pair_index, {"fingerprint": "abc123"}, pair_sims=sims)


def test_round_trip_and_pair_coordinates(tmp_path: Path) -> None:
    small_store(tmp_path)
    st = CorrespondenceStore.open(tmp_path, expected_fingerprint="abc123")
    assert (st.num_images, st.k, st.fingerprint) == (3, 2, "abc123")
    assert st.boxes(0).tolist() == [[0, 0, 10, 10], [5, 5, 20, 30]]
    assert st.neighbours(1).tolist() == [2, 0]
    assert st.pairs(0, 1).tolist() == [[0, 0, 10, 10, 7, 7, 9, 9], [5, 5, 20, 30, 7, 7, 9, 9]]
    assert st.pairs(2, 0).tolist() == [[7, 7, 9, 9, 5, 5, 20, 30]]
    assert st.pair_sims(0, 1).tolist() == [0.5, 0.5]
    assert np.load(tmp_path / "boxes.npy").dtype == np.int16
    assert np.load(tmp_path / "pair_index.npy").dtype == np.uint8


def test_fingerprint_mismatch_is_refused_in_one_line(tmp_path: Path) -> None:
    small_store(tmp_path)
    with pytest.raises(StoreMismatch) as err:
        CorrespondenceStore.open(tmp_path, expected_fingerprint="other")
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_incomplete_folder_is_refused(tmp_path: Path) -> None:
    small_store(tmp_path)
    (tmp_path / "meta.json").unlink()
    with pytest.raises(StoreError, match=r"meta\.json missing"):
        CorrespondenceStore.open(tmp_path)


def test_image_without_box_or_pair_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one box"):
        write_store(
            tmp_path,
            [np.zeros((0, 4)), np.ones((1, 4))],
            np.array([[1], [0]]),
            [[np.zeros((1, 2))], [np.zeros((1, 2))]],
            {"fingerprint": "x"},
        )
    with pytest.raises(ValueError, match="at least one pair"):
        write_store(
            tmp_path,
            [np.ones((1, 4)), np.ones((1, 4))],
            np.array([[1], [0]]),
            [[np.zeros((0, 2))], [np.zeros((1, 2))]],
            {"fingerprint": "x"},
        )


def test_pickling_sends_the_path_not_the_arrays(tmp_path: Path) -> None:
    n = 5000
    boxes = [np.array([[i, i, 100, 100]] * 20) for i in range(n)]
    neighbours = np.stack([(np.arange(n) + 1) % n], axis=1)
    pairs = [[np.array([[0, 0], [1, 1]])] for _ in range(n)]
    write_store(tmp_path, boxes, neighbours, pairs, {"fingerprint": "f"})
    st = CorrespondenceStore.open(tmp_path, "f")
    blob = pickle.dumps(st)
    assert len(blob) < 1000  # the arrays alone are ~0.8 MB
    clone = pickle.loads(blob)
    assert isinstance(clone.array("boxes"), np.memmap)
    assert clone.pairs(n - 1, 0).tolist() == st.pairs(n - 1, 0).tolist()
