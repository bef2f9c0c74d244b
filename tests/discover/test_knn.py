"""Image kNN (sec. 3.1 (i)): self excluded by index, duplicates kept, deterministic ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from orl.discover.knn import knn_search


def test_self_excluded_even_with_an_exact_duplicate() -> None:
    bank = F.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    bank[7] = bank[3]  # exact duplicate
    pos = torch.arange(20)
    nb, sims = knn_search(bank, pos, bank, k=5)
    assert not np.any(nb == np.arange(20)[:, None])
    assert nb[3, 0] == 7 and nb[7, 0] == 3
    assert sims[3, 0] == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.diff(sims, axis=1) <= 0)


def test_equals_full_sort_and_blocks_agree() -> None:
    bank = F.normalize(torch.randn(50, 6, generator=torch.Generator().manual_seed(1)), dim=1)
    full = bank @ bank.T
    full.fill_diagonal_(-np.inf)
    ref = torch.sort(full, dim=1, descending=True, stable=True).indices[:, :4].numpy()
    whole, _ = knn_search(bank, torch.arange(50), bank, k=4)
    blocks = [
        knn_search(bank[s : s + 7], torch.arange(s, min(s + 7, 50)), bank, 4)[0]
        for s in range(0, 50, 7)
    ]
    np.testing.assert_array_equal(whole, ref)
    np.testing.assert_array_equal(np.concatenate(blocks), ref)


def test_ties_broken_by_lower_position_and_excluded_never_returned() -> None:
    bank = torch.tensor([[1.0, 0.0]] * 6 + [[0.0, 1.0]])
    excluded = torch.tensor([False, False, True, False, False, False, False])
    nb, _ = knn_search(bank[[4]], torch.tensor([4]), bank, k=3, excluded=excluded)
    assert nb.tolist() == [[0, 1, 3]]
    with pytest.raises(ValueError, match="fewer than k"):
        knn_search(bank[[4]], torch.tensor([4]), bank, k=6, excluded=excluded)
