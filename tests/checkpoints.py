"""A tiny `orl pretrain` checkpoint for tests of the downstream jobs (random weights)."""

from __future__ import annotations

from pathlib import Path

import torch

from orl.checkpoint import FORMAT, VERSION, atomic_save
from orl.models.byol import Encoder, OnlineNetwork


def save_tiny_checkpoint(
    path: Path,
    seed: int = 0,
    proj_hidden: int = 32,
    proj_dim: int = 16,
    step: int = 0,
    data_fingerprint: str = "",
) -> OnlineNetwork:
    """Write a resnet18 online network with small heads as `orl pretrain` would; return it."""
    torch.manual_seed(seed)
    online = OnlineNetwork(Encoder("resnet18", proj_hidden, proj_dim), ["image"], proj_hidden)
    config = {"arch": "resnet18", "model": {"proj_hidden": proj_hidden, "proj_dim": proj_dim}}
    atomic_save(
        {
            "format": FORMAT,
            "version": VERSION,
            "config": config,
            "online": online.state_dict(),
            "step": step,
            "data_fingerprint": data_fingerprint,
        },
        path,
    )
    return online
