"""The online and target networks of BYOL/ORL (sec. 3.1) and the EMA that links them."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from orl.models.backbone import Init, build_backbone
from orl.models.heads import initialised, mlp_head, projection_head


class Encoder(nn.Module):
    """Backbone + projector: f_theta without the predictor; shared by every ORL branch.

    `method` picks the projector's shape (BYOL's by default; SimCLR's or MoCo v2's for those
    stage-1 methods), so every method's checkpoint names its weights `encoder.backbone.*` and
    `encoder.projector.*`. `init` draws the fresh weights (`models/backbone.py: Init`).
    """

    def __init__(
        self,
        arch: str,
        proj_hidden: int = 4096,
        proj_dim: int = 256,
        method: str = "byol",
        init: Init = "torchvision",
    ) -> None:
        super().__init__()
        self.backbone, self.feat_dim = build_backbone(arch, init=init)
        self.proj_dim = proj_dim
        self.projector = projection_head(method, self.feat_dim, proj_hidden, proj_dim, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))  # type: ignore[no-any-return]


Views = Mapping[str, Sequence[torch.Tensor]]


class OnlineNetwork(nn.Module):
    """Encoder plus one predictor per branch (`image`, and for ORL `intra`, `inter`).

    `forward` takes every branch's views at once so that one DDP forward covers the whole step.
    Each view batch is forwarded on its own: BN statistics are per view and per view type, as in the
    authors' BYOL and ORL (the two global views are not concatenated).
    """

    def __init__(
        self,
        encoder: Encoder,
        branches: Sequence[str],
        pred_hidden: int = 4096,
        init: Init = "torchvision",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        dim = encoder.proj_dim
        self.predictors = nn.ModuleDict(
            {b: initialised(mlp_head(dim, pred_hidden, dim), init) for b in branches}
        )

    def forward(self, views: Views) -> dict[str, list[torch.Tensor]]:
        return {
            branch: [self.predictors[branch](self.encoder(v)) for v in batches]
            for branch, batches in views.items()
        }


def make_target(encoder: Encoder) -> Encoder:
    """The target network g_xi starts as an exact copy of the online encoder; never trained."""
    target = copy.deepcopy(encoder)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def project_views(target: nn.Module, views: Views) -> dict[str, list[torch.Tensor]]:
    """Target projections of every view (train-mode BN, like the online net)."""
    return {branch: [target(v) for v in batches] for branch, batches in views.items()}


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """xi <- tau * xi + (1 - tau) * theta over parameters only; BN buffers are not averaged.

    Two fused multi-tensor calls instead of a Python loop over parameters.
    """
    t_params: list[torch.Tensor] = list(target.parameters())
    o_params: list[torch.Tensor] = [p.detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise ValueError("target and online networks have different parameter lists")
    torch._foreach_mul_(t_params, tau)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - tau)
