"""Pre-trained networks for the downstream jobs (stage 2, evaluation, export, pictures).

A checkpoint written by `orl pretrain` holds the online network's state under `online` with keys
`encoder.backbone.*` (a torchvision ResNet without `fc`), `encoder.projector.*` and (BYOL, ORL)
`predictors.<branch>.*`; every stage-1 method (BYOL, SimCLR, MoCo v2) names its backbone and
projection head alike, and the head's shape follows the checkpoint's `method`. The authors evaluate
the online backbone (MoCo's query encoder); so do we. The evaluations also take torchvision state
dicts, timm, safetensors and Detectron2 weights and random initialisations
(`evaluate/inputs.py`), as the same `Pretrained` without a head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from orl.checkpoint import CheckpointError, file_sha256, load_checkpoint
from orl.models.backbone import build_backbone
from orl.models.byol import Encoder

BACKBONE_PREFIX = "encoder.backbone."
PROJECTOR_PREFIX = "encoder.projector."


@dataclass(frozen=True)
class Pretrained:
    """A backbone to embed, evaluate or export, and what is known of where it came from."""

    arch: str
    backbone: dict[str, torch.Tensor]  # torchvision ResNet keys without `fc`
    # caches and reports: orl:<sha256>, torchvision:<sha256> (also timm state dicts),
    # safetensors:<sha256>, detectron2:<sha256>, random:<arch>:seed<n>
    identity: str
    method: str = "byol"  # the training method; picks the projection head's shape
    projector: dict[str, torch.Tensor] = field(default_factory=dict)  # empty: no head
    proj_hidden: int = 0
    proj_dim: int = 0
    sha256: str = ""  # of the checkpoint file
    data_fingerprint: str = ""
    step: int = 0

    def build_backbone(self) -> nn.Module:
        """The online backbone with its trained weights, in eval mode."""
        net, _ = build_backbone(self.arch)
        net.load_state_dict(self.backbone, strict=True)
        return net.eval()

    def build_encoder(self) -> Encoder:
        """Backbone + the method's projection head, in eval mode. Stage 2 embeds images with the
        projector output (BYOL's projector, SimCLR's or MoCo v2's head) and RoIs with the backbone.
        """
        if not self.projector:
            raise CheckpointError(f"{self.identity}: no projection head (not an orl checkpoint)")
        enc = Encoder(self.arch, self.proj_hidden, self.proj_dim, self.method)
        enc.backbone.load_state_dict(self.backbone, strict=True)
        enc.projector.load_state_dict(self.projector, strict=True)
        return enc.eval()


def _strip(state: dict[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_pretrained(path: Path) -> Pretrained:
    """Read the online backbone and projector of an `orl pretrain` checkpoint."""
    ckpt = load_checkpoint(path)
    online = ckpt["online"]
    backbone = _strip(online, BACKBONE_PREFIX)
    projector = _strip(online, PROJECTOR_PREFIX)
    if not backbone or not projector:
        raise CheckpointError(f"{path}: checkpoint has no online encoder weights")
    model_cfg = ckpt["config"]["model"]
    sha256 = file_sha256(path)
    return Pretrained(
        arch=str(ckpt["config"]["arch"]),
        backbone=backbone,
        identity=f"orl:{sha256}",
        method=str(ckpt["config"].get("method", "byol")),
        projector=projector,
        proj_hidden=int(model_cfg["proj_hidden"]),
        proj_dim=int(model_cfg["proj_dim"]),
        sha256=sha256,
        data_fingerprint=str(ckpt.get("data_fingerprint", "")),
        step=int(ckpt.get("step", 0)),
    )
