"""The BYOL regression loss (eq. 1) and its symmetric form (sec. 3.1, "Stage 3"), and the
contrastive losses of the paper's other image-level baselines: SimCLR's NT-Xent and MoCo's InfoNCE.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from orl import distributed


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


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent: l(i, j) = -log exp(s_ij / T) / sum_{k != i} exp(s_ik / T), s = cosine,
    averaged over all 2N rows (both directions of every positive pair).

    `z1[i]` and `z2[i]` are the two views of image i on this rank. Negatives are the 2N - 2 other
    rows of the *global* batch: every rank's rows are gathered with a gradient
    (`distributed.gather_with_grad`); this rank computes the terms of its own 2n rows. With DDP's
    gradient averaging that is exactly the single-process gradient of the global mean.
    """
    if z1.shape != z2.shape:
        raise ValueError("the two views need the same number of embeddings")
    with torch.autocast(z1.device.type, enabled=False):  # logits / T in fp32 under AMP too
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # 2n x d: views 1, then views 2
        everything = distributed.gather_with_grad(z)  # 2nW x d, rank-major
        n2 = z.shape[0]
        start = distributed.rank() * n2
        rows = torch.arange(n2, device=z.device)
        cols = torch.arange(everything.shape[0], device=z.device)
        is_self = cols[None, :] == (start + rows)[:, None]
        logits = (z @ everything.T / temperature).masked_fill(is_self, float("-inf"))
        positives = start + (rows + n2 // 2) % n2
        return F.cross_entropy(logits, positives)


def info_nce(
    query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """MoCo's InfoNCE (MoCo eq. 1): -log exp(q.k+ / T) / (exp(q.k+ / T) + sum_queue exp(q.k / T)).

    Each query's positive is the key of the same image; the negatives are the queue's keys. Query
    and key are L2-normalised here; key and queue are constants (no gradient).
    """
    with torch.autocast(query.device.type, enabled=False):  # logits / T in fp32 under AMP too
        q = F.normalize(query.float(), dim=1)
        k = F.normalize(key.detach().float(), dim=1)
        positive = (q * k).sum(dim=1, keepdim=True)
        negative = q @ queue.detach().float().T
        logits = torch.cat([positive, negative], dim=1) / temperature
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
