"""Batch norm whose statistics are computed per slice of the batch.

With `bn_splits = N`, one process normalises each contiguous 1/N of a batch on its own, as N
devices with un-synchronised BN would. This lets a single process reproduce a multi-process run
exactly (the DDP equivalence test uses it on the CPU, where SyncBatchNorm is unavailable).
"""

from __future__ import annotations

import torch
from torch import nn


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm (1d or 2d input) with per-slice statistics in training mode."""

    def __init__(self, num_features: int, num_splits: int, **kwargs: object) -> None:
        super().__init__(num_features, **kwargs)  # type: ignore[arg-type]
        self.num_splits = num_splits

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 4):
            raise ValueError(f"expected 2D or 4D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or self.num_splits == 1:
            return super().forward(input)
        return torch.cat(
            [super(SplitBatchNorm, self).forward(c) for c in input.chunk(self.num_splits)]
        )


def convert_split_bn(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every BatchNorm1d/2d by a SplitBatchNorm with the same parameters and buffers."""
    if num_splits == 1:
        return module
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        new = SplitBatchNorm(
            module.num_features,
            num_splits,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        new.load_state_dict(module.state_dict())
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_split_bn(child, num_splits))
    return module
