"""Projection heads of the three stage-1 methods and BYOL's predictor.

Stage 1 "can be freely replaced with other image-level contrastive learning methods" (sec. 3.1);
the paper's baselines are BYOL, SimCLR and MoCo v2 (Tables 1-4), each with its own head.
"""

from __future__ import annotations

from torch import nn

from orl.models.backbone import Init, authors_init


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """BYOL: Linear(in, hidden, bias) -> BN -> ReLU -> Linear(hidden, out, no bias).

    The shape of both the projector (2048 -> 4096 -> 256) and the predictor (256 -> 4096 -> 256)
    in the authors' implementation: the first Linear keeps its bias, the last has none and no BN
    follows.
    """
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim, bias=True),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim, bias=False),
    )


def simclr_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """SimCLR: "a MLP with one hidden layer" (2048 -> 2048 -> 128) with BN on both layers.

    Linear(no bias) -> BN -> ReLU -> Linear(no bias) -> BN, the shape of SimCLR's code and of the
    authors' base (OpenSelfSup's `NonLinearNeckSimCLR`); no Linear keeps a bias, as BN follows each.
    """
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim, bias=False),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim, bias=False),
        nn.BatchNorm1d(out_dim),
    )


def mocov2_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """MoCo v2: "replace the fc head in MoCo with a 2-layer MLP head (hidden layer 2048-d, with
    ReLU)": Linear(bias) -> ReLU -> Linear(bias), 128-d output, no BN (as MoCo v2's code)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim, bias=True),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim, bias=True),
    )


def projection_head(
    method: str, in_dim: int, hidden_dim: int, out_dim: int, init: Init = "torchvision"
) -> nn.Sequential:
    """The projector of training method `method`; ORL and multi-crop BYOL use BYOL's."""
    if method == "simclr":
        head = simclr_head(in_dim, hidden_dim, out_dim)
    elif method == "mocov2":
        head = mocov2_head(in_dim, hidden_dim, out_dim)
    else:
        head = mlp_head(in_dim, hidden_dim, out_dim)
    return initialised(head, init)


def initialised(head: nn.Sequential, init: Init) -> nn.Sequential:
    """`head` as drawn by `init`: "torchvision" keeps PyTorch's defaults (Kaiming-uniform
    weights with a = sqrt(5), uniform biases); "authors" draws every Linear Kaiming-normal with
    fan_in and a zero bias (OpenSelfSup's `init_linear="kaiming"`), norm layers 1 and 0."""
    if init == "authors":
        authors_init(head, (nn.Linear,))
    return head
