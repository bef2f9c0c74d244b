"""The trained network of SimCLR and of MoCo v2's query side (the paper's baselines, Tables 1-4)."""

from __future__ import annotations

import torch
from torch import nn

from orl.models.byol import Encoder


class ContrastiveNetwork(nn.Module):
    """An Encoder (backbone + the method's projection head) and no predictor.

    Wrapping the Encoder keeps BYOL's checkpoint names (`encoder.backbone.*`,
    `encoder.projector.*`), so `load_pretrained` and the evaluations read every method alike.
    """

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # type: ignore[no-any-return]
