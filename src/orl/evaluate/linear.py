"""Linear classification on frozen features (sec. 4.1, Table 1; appendix B).

One BatchNorm (non-affine) + Linear head per depth, all trained jointly on top of the frozen
backbone in eval mode (OpenSelfSup's multi-head linear benchmark, the authors' code): SGD lr 0.01,
Nesterov momentum 0.9, weight decay 1e-4, batch 256 (split over ranks); 28 / 14 / 84 epochs on
ImageNet / Places205 / iNat18 with the learning rate x0.1 three times, at epochs 8/16/24, 4/8/12
and 24/48/72 (2/7, 4/7 and 6/7 of training); training input RandomResizedCrop + flip +
ColorJitter(0.4, 0.4, 0.4, 0) + AlexNet lighting noise. Top-1 and top-5 on the center crop.
`schedule: thirds` and `augment: crop_flip` give the two-decay, crop-and-flip variant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from orl.distributed import DistInfo
from orl.evaluate.classification import (
    SGDRun,
    StateFile,
    eval_loader,
    reduce_counts,
    step_schedule,
    topk_correct,
    train_epochs,
    train_loader,
    train_transform,
    with_sync_bn,
)
from orl.evaluate.features import SVM_LAYERS, pool_maps
from orl.models.backbone import stage_features

PRESET_EPOCHS = {"imagenet": 28, "places205": 14, "inat18": 84}


@dataclass(frozen=True)
class LinearConfig:
    epochs: int = 28
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    layers: tuple[str, ...] = SVM_LAYERS
    # authors: x0.1 at 2/7, 4/7, 6/7 of training; thirds: x0.1 at 1/3 and 2/3
    schedule: Literal["authors", "thirds"] = "authors"
    # authors: crop, flip, colour jitter, lighting noise; crop_flip: crop and flip only
    augment: Literal["authors", "crop_flip"] = "authors"
    workers: int = 8
    seed: int = 0


def linear_config(preset: str) -> LinearConfig:
    """The appendix-B settings of one data set (only the epoch count differs)."""
    if preset not in PRESET_EPOCHS:
        raise ValueError(f"unknown preset '{preset}': choose {', '.join(PRESET_EPOCHS)}")
    return dataclasses.replace(LinearConfig(), epochs=PRESET_EPOCHS[preset])


def milestones(epochs: int, schedule: str) -> list[int]:
    """Epochs after which the lr drops x0.1: the authors' three equally spaced decays (8, 16, 24
    of 28; 4, 8, 12 of 14; 24, 48, 72 of 84), or two at 1/3 and 2/3 of training (`thirds`)."""
    points = (2 / 7, 4 / 7, 6 / 7) if schedule == "authors" else (1 / 3, 2 / 3)
    return [m for m in (round(f * epochs) for f in points) if m > 0]


def linear_train_transform(cfg: LinearConfig) -> Any:
    """The training input of `cfg.augment`."""
    return train_transform(colour=cfg.augment == "authors")


@torch.no_grad()
def pooled_shapes(
    backbone: nn.Module, layers: Sequence[str], size: int = 224
) -> dict[str, tuple[int, ...]]:
    """(C, h, w) of each pooled depth for a `size` x `size` input."""
    dummy = torch.zeros(1, 3, size, size, device=next(backbone.parameters()).device)
    pooled = pool_maps(stage_features(backbone.eval(), dummy), layers)
    return {n: tuple(t.shape[1:]) for n, t in pooled.items()}


class DepthHeads(nn.Module):
    """Per depth: BatchNorm2d(affine=False) on the pooled map, flatten, Linear (init N(0, 0.01))."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], num_classes: int) -> None:
        super().__init__()
        self.norms = nn.ModuleDict(
            {n: nn.BatchNorm2d(s[0], affine=False) for n, s in shapes.items()}
        )
        self.fcs = nn.ModuleDict()
        for name, (c, h, w) in shapes.items():
            fc = nn.Linear(c * h * w, num_classes)
            nn.init.normal_(fc.weight, std=0.01)
            nn.init.zeros_(fc.bias)
            self.fcs[name] = fc

    def forward(self, pooled: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: self.fcs[n](self.norms[n](x).flatten(1)) for n, x in pooled.items()}


def train_linear(
    backbone: nn.Module,
    train_data: Dataset[Any],
    val_data: Dataset[Any],
    num_classes: int,
    cfg: LinearConfig,
    dist: DistInfo,
    state: StateFile | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train the heads, evaluate every depth; with `state` save a resumable state each epoch."""
    torch.manual_seed(cfg.seed)
    backbone = backbone.eval().to(dist.device)
    for p in backbone.parameters():
        p.requires_grad_(False)
    layers = list(cfg.layers)
    heads: nn.Module = DepthHeads(pooled_shapes(backbone, layers), num_classes).to(dist.device)
    heads = with_sync_bn(heads, dist, True)  # OpenSelfSup used SyncBN heads
    opt = torch.optim.SGD(
        heads.parameters(),
        cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
        weight_decay=cfg.weight_decay,
    )
    loader, sampler = train_loader(train_data, cfg.batch_size, cfg.workers, dist, cfg.seed)
    lrs = step_schedule(cfg.lr, cfg.epochs, len(loader), milestones(cfg.epochs, cfg.schedule), 0.1)

    def batch_loss(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            pooled = pool_maps(stage_features(backbone, images), layers)
        logits = model(pooled)
        return torch.stack([F.cross_entropy(logits[n], targets) for n in layers]).sum()

    run = SGDRun(heads, opt, [lrs], loader, sampler, batch_loss)
    history = train_epochs(run, cfg.epochs, cfg.seed, dist, state, resume)
    acc = evaluate_heads(backbone, heads, val_data, layers, cfg, dist)
    return {"protocol": "linear", "config": dataclasses.asdict(cfg), "history": history, **acc}


@torch.no_grad()
def evaluate_heads(
    backbone: nn.Module,
    heads: nn.Module,
    val_data: Dataset[Any],
    layers: Sequence[str],
    cfg: LinearConfig,
    dist: DistInfo,
) -> dict[str, dict[str, float]]:
    """Top-1 / top-5 (fractions) of every depth's head on the whole validation set."""
    heads.eval()
    counts = torch.zeros(len(layers), 2, dtype=torch.float64)
    seen = 0
    for images, targets in eval_loader(val_data, cfg.batch_size, cfg.workers, dist):
        images, targets = images.to(dist.device), targets.to(dist.device)
        logits = heads(pool_maps(stage_features(backbone, images), layers))
        for i, name in enumerate(layers):
            counts[i] += torch.tensor(topk_correct(logits[name], targets), dtype=torch.float64)
        seen += len(targets)
    total = reduce_counts([*counts.flatten().tolist(), seen], dist)
    n = max(total[-1], 1.0)
    return {
        "top1": {name: total[2 * i] / n for i, name in enumerate(layers)},
        "top5": {name: total[2 * i + 1] / n for i, name in enumerate(layers)},
    }
