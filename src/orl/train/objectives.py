"""The forward passes and loss of one training step, one function per kind of method.

Every objective has the signature `(model, target, views) -> (loss, terms)`: `model` is the trained
network as the step calls it (DDP-wrapped, compiled), `target` the EMA network or None, `views`
the batch's normalised views by branch. `terms` holds each branch's loss for the log (`image` for
SimCLR and MoCo v2). `train/methods.py` binds the method's settings (weights, temperature, queue).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from orl import distributed
from orl.losses import info_nce, nt_xent, weighted_branch_loss
from orl.models.byol import Views, project_views
from orl.models.moco import KeyQueue

Terms = dict[str, torch.Tensor]
Objective = Callable[[nn.Module, nn.Module | None, Views], tuple[torch.Tensor, Terms]]


def byol_objective(
    model: nn.Module,
    target: nn.Module | None,
    views: Views,
    *,
    weights: dict[str, float],
    concat: bool = False,
) -> tuple[torch.Tensor, Terms]:
    """BYOL, ORL, multi-crop BYOL: every branch's predictions regress the target's projections
    (eq. 2: weighted sum of symmetric BYOL losses).

    `concat`: each branch's two views go through the networks as one batch, whose batch norms
    normalise each view's half on its own (`model.concat_views`), then are split again.
    """
    assert target is not None  # the BYOL family always has a target network
    if concat:
        joined = {b: [torch.cat(list(vs))] for b, vs in views.items()}
        predictions = _split_views(model(joined))
        targets = _split_views(project_views(target, joined))
    else:
        predictions = model(views)
        targets = project_views(target, views)
    return weighted_branch_loss(predictions, targets, weights)


def _split_views(outputs: dict[str, list[torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    return {b: list(out[0].chunk(2)) for b, out in outputs.items()}


def simclr_objective(
    model: nn.Module, target: nn.Module | None, views: Views, *, temperature: float
) -> tuple[torch.Tensor, Terms]:
    """SimCLR (no target network): both views in one forward (BN over the 2N images, as
    SimCLR's code and the authors' OpenSelfSup do), NT-Xent over the global batch."""
    first, second = views["image"]
    z1, z2 = model(torch.cat([first, second])).chunk(2)
    loss = nt_xent(z1, z2, temperature)
    return loss, {"image": loss}


def mocov2_objective(
    model: nn.Module,
    target: nn.Module | None,
    views: Views,
    *,
    queue: KeyQueue,
    temperature: float,
) -> tuple[torch.Tensor, Terms]:
    """MoCo v2: queries of view 1 from the trained network, keys of view 2 from the momentum
    encoder (`target`), InfoNCE against the queue; then every rank's keys are enqueued, as MoCo's
    forward does (the loss reads a copy of the queue taken before).

    The key encoder's momentum update is the loop's EMA step after the optimizer step, which
    equals MoCo's update at the start of the next forward.
    """
    assert target is not None  # the key encoder
    first, second = views["image"]
    query = model(first)
    with torch.no_grad():
        key = target(second)
    loss = info_nce(query, key, queue.keys.clone(), temperature)
    with torch.no_grad():
        queue.enqueue(distributed.gather_with_grad(F.normalize(key.float(), dim=1)))
    return loss, {"image": loss}
