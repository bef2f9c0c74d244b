"""BYOL projector and predictor (sec. 3.2, "Network architecture")."""

from __future__ import annotations

from torch import nn


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear(in, hidden, bias) -> BN -> ReLU -> Linear(hidden, out, no bias).

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
