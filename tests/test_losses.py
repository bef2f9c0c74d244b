import math

import pytest
import torch

from orl.losses import byol_loss, symmetric_byol_loss


def test_byol_loss_matches_hand_computed_cosines() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[1.0, 1.0], [0.0, -3.0]])
    # cos = 1/sqrt(2) and -1 -> losses 2 - sqrt(2) and 4
    expected = ((2 - math.sqrt(2)) + 4.0) / 2
    assert byol_loss(p, z).item() == pytest.approx(expected, abs=1e-6)


def test_byol_loss_equals_squared_distance_of_normalised_vectors() -> None:
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    pn, zn = p / p.norm(dim=1, keepdim=True), z / z.norm(dim=1, keepdim=True)
    assert byol_loss(p, z).item() == pytest.approx(((pn - zn) ** 2).sum(1).mean().item(), abs=1e-6)


def test_symmetric_loss_sums_both_directions_and_blocks_target_gradient() -> None:
    p1 = torch.tensor([[1.0, 0.0]], requires_grad=True)
    p2 = torch.tensor([[0.0, 1.0]], requires_grad=True)
    z1 = torch.tensor([[0.0, 1.0]], requires_grad=True)
    z2 = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = symmetric_byol_loss([p1, p2], [z1, z2])
    # p1 regresses z2 (identical: 0), p2 regresses z1 (identical: 0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    swapped = symmetric_byol_loss([p1, p2], [z2, z1])
    assert swapped.item() == pytest.approx(4.0, abs=1e-6)  # two orthogonal pairs, 2 each
    swapped.backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None


def test_symmetric_loss_needs_two_views() -> None:
    with pytest.raises(ValueError):
        symmetric_byol_loss([torch.ones(1, 2)], [torch.ones(1, 2)])
