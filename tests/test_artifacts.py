"""Atomic writes: whole files or none, with the permissions a plain open() would give."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from orl.artifacts import atomic_open, atomic_save_npy, atomic_write_text


def test_written_files_get_the_mode_of_a_plain_open(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text("y", tmp_path / "atomic.txt")
    mode = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode)
    assert mode & stat.S_IRGRP  # not mkstemp's owner-only 0600 under the usual umask 022


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_text("old", target)
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_save_npy_round_trips_without_pickles(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    atomic_save_npy(array, tmp_path / "x.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy", allow_pickle=False), array)
