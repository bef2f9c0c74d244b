"""Data, schedule, metrics and resume shared by the two SGD protocols (linear and semi-supervised).

Under torchrun each rank reads a disjoint shard (DistributedSampler for training, a strided slice
without padding for validation, so every image is counted exactly once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision import datasets, transforms

from orl.augment import IMAGENET_MEAN, IMAGENET_STD
from orl.checkpoint import atomic_save
from orl.distributed import DistInfo, all_reduce_mean
from orl.evaluate.inputs import EvalInputError, require_dir


def train_transform(crop: int = 224) -> Callable[[Image.Image], torch.Tensor]:
    """Training input of both protocols: random-resized crop and horizontal flip."""
    pipeline: Callable[[Image.Image], torch.Tensor] = transforms.Compose(
        [
            transforms.RandomResizedCrop(crop),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return pipeline


def image_folder(
    root: Path, transform: Callable[[Image.Image], torch.Tensor]
) -> datasets.ImageFolder:
    """An ImageFolder (one sub-folder per class), or a one-line EvalInputError."""
    require_dir(root, "an ImageFolder: one sub-folder of images per class")
    try:
        return datasets.ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, RuntimeError) as exc:
        raise EvalInputError(
            f"{root}: not an ImageFolder ({exc}); one sub-folder per class"
        ) from exc


def train_loader(
    data: Dataset[Any], batch_size: int, workers: int, dist: DistInfo, seed: int
) -> tuple[DataLoader[Any], DistributedSampler[Any]]:
    """Shuffled shard per rank; the order depends on (seed, epoch) only, so resume is exact."""
    sampler: DistributedSampler[Any] = DistributedSampler(
        data, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed
    )
    per_rank = max(1, batch_size // dist.world_size)
    loader = DataLoader(data, per_rank, sampler=sampler, num_workers=workers, drop_last=False)
    return loader, sampler


def eval_loader(
    data: Dataset[Any], batch_size: int, workers: int, dist: DistInfo
) -> DataLoader[Any]:
    """Every `world_size`-th image from `rank`: all images once, no padding duplicates."""
    shard = Subset(data, range(dist.rank, len(data), dist.world_size))  # type: ignore[arg-type]
    return DataLoader(shard, max(1, batch_size // dist.world_size), num_workers=workers)


def step_schedule(
    base_lr: float, epochs: int, steps_per_epoch: int, milestones: Sequence[int], gamma: float
) -> np.ndarray:
    """Learning rate of every step: `base_lr * gamma**(milestones passed by the step's epoch)`."""
    epoch_of_step = np.arange(epochs * steps_per_epoch) // steps_per_epoch
    passed = np.searchsorted(np.asarray(sorted(milestones)), epoch_of_step, side="right")
    return np.asarray(base_lr * gamma**passed, dtype=np.float64)


def topk_correct(
    logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)
) -> list[int]:
    """How many rows have their target among the k highest logits, for each k."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hit = top == targets[:, None]
    return [int(hit[:, :k].any(dim=1).sum()) for k in ks]


def reduce_counts(counts: Sequence[float], dist: DistInfo) -> list[float]:
    """Sum per-rank counts over ranks (the helper averages, so scale back by the world size)."""
    mean = all_reduce_mean(torch.tensor(list(counts), dtype=torch.float64))
    return [float(v) * dist.world_size for v in mean]


def save_run_state(path: Path, state: dict[str, Any]) -> None:
    """Atomic write of the named run variables (epoch, step, model, optimizer, history)."""
    atomic_save(state, path)


def load_run_state(path: Path) -> dict[str, Any]:
    """Read a run state written by `save_run_state` (weights_only: no pickled code is run)."""
    if not path.is_file():
        raise EvalInputError(f"{path}: nothing to resume from; drop --resume to start afresh")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state
