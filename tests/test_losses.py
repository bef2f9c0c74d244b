import math

import pytest
import torch

from orl.losses import byol_loss, info_nce, nt_xent, symmetric_byol_loss


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


def test_nt_xent_hand_computed_identical_views() -> None:
    # Two images whose views are identical and orthogonal to the other image: every row has
    # cosine 1 with its positive and 0 with both negatives, so each of the 4 terms is
    # -2 + log(e^2 + 1 + 1) = log(1 + 2 e^-2) at T = 0.5.
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert nt_xent(z, z.clone(), 0.5).item() == pytest.approx(math.log(1 + 2 * math.exp(-2)))


def _nt_xent_by_the_formula(z1: list[list[float]], z2: list[list[float]], t: float) -> float:
    """SimCLR's l(i, j) summed over both directions of every pair, / 2N, in plain Python."""
    rows = [*z1, *z2]
    unit = [[x / math.sqrt(sum(v * v for v in r)) for x in r] for r in rows]
    n = len(z1)

    def s(i: int, j: int) -> float:
        return sum(a * b for a, b in zip(unit[i], unit[j], strict=True)) / t

    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denominator = sum(math.exp(s(i, k)) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(s(i, j)) / denominator)
    return total / (2 * n)


def test_nt_xent_matches_the_formula_on_a_small_batch() -> None:
    z1 = [[1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [-2.0, 0.0, 1.0]]
    z2 = [[1.0, 1.5, 0.5], [0.0, -1.0, 2.0], [1.0, 1.0, 1.0]]
    expected = _nt_xent_by_the_formula(z1, z2, 0.1)
    got = nt_xent(torch.tensor(z1), torch.tensor(z2), 0.1).item()
    assert got == pytest.approx(expected, rel=1e-5)
    # swapping the pairing changes the loss: the positives are the rows with the same index
    swapped = nt_xent(torch.tensor(z1), torch.tensor(z2[::-1]), 0.1).item()
    assert swapped == pytest.approx(_nt_xent_by_the_formula(z1, z2[::-1], 0.1), rel=1e-5)
    assert abs(swapped - got) > 0.1


def test_info_nce_hand_computed() -> None:
    # cos(q, k+) = 0 and the queue holds q and -q: logits (0, 1, -1) / 0.5
    q = torch.tensor([[2.0, 0.0]], requires_grad=True)
    k = torch.tensor([[0.0, 5.0]], requires_grad=True)
    queue = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    loss = info_nce(q, k, queue, 0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(2) + math.exp(-2)))
    loss.backward()
    assert q.grad is not None and k.grad is None  # the key is a constant


def test_info_nce_averages_over_queries() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    queue = torch.tensor([[0.0, 1.0]])
    # row 0: positive 1, negative 0 -> log(1 + e^-1/T); row 1: positive 1, negative 1 -> log 2
    expected = (math.log(1 + math.exp(-1 / 0.2)) + math.log(2)) / 2
    assert info_nce(q, k, queue, 0.2).item() == pytest.approx(expected, rel=1e-6)
