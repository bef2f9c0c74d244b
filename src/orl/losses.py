"""The BYOL regression loss (eq. 1) and its symmetric form (sec. 3.1, "Stage 3")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||normalize(p) - normalize(z)||^2 = 2 - 2 cos(p, z), averaged over the batch.

    The target is treated as a constant (no gradient flows into the target network).
    """
    p = F.normalize(prediction.float(), dim=-1)
    z = F.normalize(target.detach().float(), dim=-1)
    return (2 - 2 * (p * z).sum(dim=-1)).mean()


def symmetric_byol_loss(
    predictions: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
) -> torch.Tensor:
    """L(v, v') + L(v', v): view 0's prediction regresses view 1's target and vice versa.

    The two directions are summed, as in the authors' BYOL (not averaged).
    """
    if len(predictions) != 2 or len(targets) != 2:
        raise ValueError("a symmetric BYOL loss needs exactly two views")
    return byol_loss(predictions[0], targets[1]) + byol_loss(predictions[1], targets[0])


def weighted_branch_loss(
    predictions: dict[str, list[torch.Tensor]],
    targets: dict[str, list[torch.Tensor]],
    weights: dict[str, float],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 2: sum over branches of weight x symmetric BYOL loss; also returns each term.

    BYOL is the single branch `image`; ORL adds `intra` and `inter` (lambda_1..3 = 1 by default).
    """
    terms = {b: symmetric_byol_loss(predictions[b], targets[b]) for b in weights}
    total = torch.stack([weights[b] * terms[b] for b in weights]).sum()
    return total, terms
