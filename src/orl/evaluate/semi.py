"""Semi-supervised ImageNet: fine-tune everything on 1% or 10% of the labels (sec. 4.1, Table 3).

Appendix B: SGD momentum 0.9, batch 256 (split over ranks), 20 epochs, backbone lr 0.01 and
classifier lr 1.0 (x100), both x0.2 at epochs 12 and 16, weight decay 0 (1%) or 1e-4 (10%).
The subsets are SimCLR's lists (one training file name per line, e.g. `n01440764_10026.JPEG`).
With fewer epochs the decays stay at 60% and 80% of training. Under multi-GPU DDP the backbone's
BN is synchronised (SyncBatchNorm, the authors' configs); `sync_bn: false` keeps per-GPU BN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset
from torchvision import datasets

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
    with_sync_bn,
)
from orl.evaluate.inputs import EvalInputError

PRESET_WEIGHT_DECAY = {"1pct": 0.0, "10pct": 1e-4}


@dataclass(frozen=True)
class SemiConfig:
    epochs: int = 20
    batch_size: int = 256
    backbone_lr: float = 0.01
    head_lr_scale: float = 100.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    decay_at: tuple[float, ...] = (0.6, 0.8)  # fractions of training: epochs 12 and 16 of 20
    gamma: float = 0.2
    sync_bn: bool = True  # SyncBatchNorm under multi-GPU DDP, as the authors
    workers: int = 8
    seed: int = 0


def semi_config(preset: str) -> SemiConfig:
    """Appendix-B settings for the 1% or the 10% subset (only weight decay differs)."""
    if preset not in PRESET_WEIGHT_DECAY:
        raise ValueError(f"unknown preset '{preset}': choose {', '.join(PRESET_WEIGHT_DECAY)}")
    return dataclasses.replace(SemiConfig(), weight_decay=PRESET_WEIGHT_DECAY[preset])


def subset_indices(data: datasets.ImageFolder, list_file: Path) -> list[int]:
    """Indices of the ImageFolder samples whose file names the subset list names."""
    if not list_file.is_file():
        raise EvalInputError(
            f"{list_file}: no subset list; use SimCLR's 1percent.txt / 10percent.txt"
        )
    wanted = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
    index = {Path(path).name: i for i, (path, _) in enumerate(data.samples)}
    missing = [name for name in wanted if name not in index]
    if missing:
        raise EvalInputError(
            f"{list_file}: {len(missing)} listed images are not in the training folder "
            f"(first: {missing[0]}); pass the matching --train folder"
        )
    return sorted(index[name] for name in wanted)


class FineTuneNet(nn.Module):
    """Backbone (global-pooled output) + a linear classifier initialised N(0, 0.01)."""

    def __init__(self, backbone: nn.Module, width: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(width, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))  # type: ignore[no-any-return]


def finetune(
    backbone: nn.Module,
    width: int,
    train_data: Dataset[Any],
    train_indices: Sequence[int],
    val_data: Dataset[Any],
    num_classes: int,
    cfg: SemiConfig,
    dist: DistInfo,
    state: StateFile | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Fine-tune on the labelled subset, then top-1 / top-5 on the validation set."""
    torch.manual_seed(cfg.seed)
    net = FineTuneNet(backbone, width, num_classes)
    with_sync_bn(net, dist, cfg.sync_bn)  # converts the backbone's BN in place
    net = net.to(dist.device)
    head_lr = cfg.backbone_lr * cfg.head_lr_scale
    opt = torch.optim.SGD(
        [
            {"params": net.backbone.parameters(), "lr": cfg.backbone_lr},
            {"params": net.fc.parameters(), "lr": head_lr},
        ],
        lr=cfg.backbone_lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )
    loader, sampler = train_loader(
        Subset(train_data, list(train_indices)), cfg.batch_size, cfg.workers, dist, cfg.seed
    )
    milestones = [round(f * cfg.epochs) for f in cfg.decay_at]
    factors = step_schedule(1.0, cfg.epochs, len(loader), milestones, cfg.gamma)

    def batch_loss(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(images), targets)

    lrs = [cfg.backbone_lr * factors, head_lr * factors]
    run = SGDRun(net, opt, lrs, loader, sampler, batch_loss)
    history = train_epochs(run, cfg.epochs, cfg.seed, dist, state, resume)
    top1, top5 = evaluate_net(net, val_data, cfg, dist)
    return {
        "protocol": "semi",
        "config": dataclasses.asdict(cfg),
        "n_labelled": len(train_indices),
        "history": history,
        "top1": top1,
        "top5": top5,
    }


@torch.no_grad()
def evaluate_net(
    net: nn.Module, val_data: Dataset[Any], cfg: SemiConfig, dist: DistInfo
) -> tuple[float, float]:
    """Top-1 and top-5 (fractions) over the whole validation set."""
    net.eval()
    top1 = top5 = seen = 0
    for images, targets in eval_loader(val_data, cfg.batch_size, cfg.workers, dist):
        c1, c5 = topk_correct(net(images.to(dist.device)), targets.to(dist.device))
        top1, top5, seen = top1 + c1, top5 + c5, seen + len(targets)
    t1, t5, n = reduce_counts([top1, top5, seen], dist)
    return t1 / max(n, 1.0), t5 / max(n, 1.0)
