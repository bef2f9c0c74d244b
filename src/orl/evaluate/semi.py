"""Semi-supervised ImageNet: fine-tune everything on 1% or 10% of the labels (sec. 4.1, Table 3).

Appendix B: SGD momentum 0.9, batch 256 (split over ranks), 20 epochs, backbone lr 0.01 and
classifier lr 1.0 (x100), both x0.2 at epochs 12 and 16, weight decay 0 (1%) or 1e-4 (10%).
The subsets are SimCLR's lists (one training file name per line, e.g. `n01440764_10026.JPEG`).
With fewer epochs the decays stay at 60% and 80% of training.
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
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Subset
from torchvision import datasets

from orl.distributed import DistInfo, barrier
from orl.evaluate.classification import (
    eval_loader,
    load_run_state,
    reduce_counts,
    save_run_state,
    step_schedule,
    topk_correct,
    train_loader,
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
    run_dir: Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Fine-tune on the labelled subset, then top-1 / top-5 on the validation set."""
    torch.manual_seed(cfg.seed)
    net = FineTuneNet(backbone, width, num_classes).to(dist.device)
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
    state_path = run_dir / "semi_last.pt" if run_dir else None
    start, step, history = 0, 0, []
    if resume and state_path is not None:
        saved = load_run_state(state_path)
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        start, step, history = saved["epoch"], saved["step"], list(saved["history"])
    model: nn.Module = net
    if dist.world_size > 1:
        ids = [dist.local_rank] if dist.device.type == "cuda" else None
        model = DistributedDataParallel(net, device_ids=ids)
    for epoch in range(start, cfg.epochs):
        sampler.set_epoch(epoch)
        torch.manual_seed(
            cfg.seed + epoch
        )  # augmentation draws depend on the epoch only: exact resume
        model.train()
        total, batches = 0.0, 0
        for images, targets in loader:
            opt.param_groups[0]["lr"] = cfg.backbone_lr * float(factors[step])
            opt.param_groups[1]["lr"] = head_lr * float(factors[step])
            loss = F.cross_entropy(model(images.to(dist.device)), targets.to(dist.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            total, batches = total + loss.item(), batches + 1
        history.append({"epoch": epoch + 1, "loss": total / max(batches, 1)})
        if state_path is not None and dist.is_main:
            save_run_state(
                state_path,
                {"epoch": epoch + 1, "step": step, "model": net.state_dict(),
                 "optimizer": opt.state_dict(), "history": history},
            )  # fmt: skip
        barrier()
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
