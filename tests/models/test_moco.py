"""MoCo's key queue: pointer, wrap-around, oldest-first replacement, state."""

from __future__ import annotations

import pytest
import torch

from orl.models.moco import KeyQueue


def _keys(*values: float) -> torch.Tensor:
    return torch.tensor([[v, 0.0] for v in values])


def test_starts_with_unit_keys_and_pointer_zero() -> None:
    queue = KeyQueue(7, 3)
    torch.testing.assert_close(queue.keys.norm(dim=1), torch.ones(7))
    assert int(queue.ptr) == 0


def test_enqueue_advances_the_pointer_and_wraps_around() -> None:
    queue = KeyQueue(5, 2)
    queue.enqueue(_keys(1, 2))
    assert int(queue.ptr) == 2
    queue.enqueue(_keys(3, 4))
    assert int(queue.ptr) == 4
    assert queue.keys[:4, 0].tolist() == [1, 2, 3, 4]
    # 5 is not a multiple of 2: the third batch fills slot 4 and wraps to slot 0
    queue.enqueue(_keys(5, 6))
    assert int(queue.ptr) == 1
    assert queue.keys[:, 0].tolist() == [6, 2, 3, 4, 5]
    # the oldest keys go first
    queue.enqueue(_keys(7, 8, 9))
    assert int(queue.ptr) == 4
    assert queue.keys[:, 0].tolist() == [6, 7, 8, 9, 5]


def test_a_batch_equal_to_the_size_replaces_everything() -> None:
    queue = KeyQueue(3, 2)
    queue.enqueue(_keys(1))
    queue.enqueue(_keys(2, 3, 4))
    assert int(queue.ptr) == 1 and queue.keys[:, 0].tolist() == [4, 2, 3]


def test_more_keys_than_slots_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot enqueue 4 keys into a queue of 3"):
        KeyQueue(3, 2).enqueue(_keys(1, 2, 3, 4))


def test_state_dict_restores_keys_and_pointer() -> None:
    queue = KeyQueue(4, 2)
    queue.enqueue(_keys(1, 2, 3))
    fresh = KeyQueue(4, 2)
    fresh.load_state_dict(queue.state_dict())
    fresh.enqueue(_keys(9, 8))
    queue.enqueue(_keys(9, 8))
    assert torch.equal(fresh.keys, queue.keys) and int(fresh.ptr) == int(queue.ptr) == 1
