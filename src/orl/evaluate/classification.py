"""What the two SGD protocols (linear and semi-supervised) share: data, schedule, the epoch loop
with its resume and DDP, metrics.

Under torchrun each rank reads a disjoint shard (DistributedSampler for training, a strided slice
without padding for validation, so every image is counted exactly once). The state a run resumes
from is one file per report (`<out stem>.state.pt` beside `--out`), stamped with the evaluated
checkpoint and every setting, so `--resume` never continues another model's or setting's run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision import datasets, transforms

from orl.augment import IMAGENET_MEAN, IMAGENET_STD
from orl.checkpoint import atomic_save, safe_torch_load
from orl.distributed import DistInfo, all_reduce_mean, barrier
from orl.evaluate.inputs import EvalInputError, read_image, require_dir

# AlexNet's PCA colour noise on ImageNet (Krizhevsky et al. 2012; fb.resnet.torch's values, as the
# authors' linear benchmark): eigenvalues and eigenvectors (columns) of the RGB covariance of
# [0, 1] pixels.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class Lighting:
    """AlexNet-style lighting noise on a [0, 1] CHW tensor: add `eigvec @ (alpha * eigval)` to
    every pixel, alpha ~ N(0, alphastd^2) per image and per component (torch's RNG)."""

    def __init__(self, alphastd: float = 0.1) -> None:
        self.alphastd = alphastd
        self.eigval = torch.tensor(IMAGENET_EIGVAL)
        self.eigvec = torch.tensor(IMAGENET_EIGVEC)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.alphastd == 0:
            return img
        alpha = torch.randn(3) * self.alphastd
        rgb = self.eigvec.to(img.dtype) @ (alpha * self.eigval).to(img.dtype)
        return img + rgb.view(3, 1, 1)


def train_transform(crop: int = 224, colour: bool = False) -> Callable[[Image.Image], torch.Tensor]:
    """Training input: random-resized crop and horizontal flip; with `colour` also the authors'
    linear-probe colour augmentation, ColorJitter(0.4, 0.4, 0.4, 0) and `Lighting(0.1)` (their
    ImageNet linear benchmark, appendix B)."""
    steps: list[Callable[..., Any]] = [
        transforms.RandomResizedCrop(crop),
        transforms.RandomHorizontalFlip(),
    ]
    if colour:
        steps.append(transforms.ColorJitter(0.4, 0.4, 0.4, 0.0))
    steps.append(transforms.ToTensor())
    if colour:
        steps.append(Lighting(0.1))
    steps.append(transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    pipeline: Callable[[Image.Image], torch.Tensor] = transforms.Compose(steps)
    return pipeline


def with_sync_bn(module: nn.Module, dist: DistInfo, enabled: bool) -> nn.Module:
    """`module` with SyncBatchNorm under multi-GPU DDP when `enabled` (the authors' setting for
    both protocols); unchanged in one process or on CPUs, where PyTorch's SyncBN does not run."""
    if enabled and dist.world_size > 1 and dist.device.type == "cuda":
        synced: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return synced
    return module


def image_folder(
    root: Path, transform: Callable[[Image.Image], torch.Tensor]
) -> datasets.ImageFolder:
    """An ImageFolder (one sub-folder per class) whose images load through `read_image`, or a
    one-line EvalInputError."""
    require_dir(root, "an ImageFolder: one sub-folder of images per class")
    try:
        return datasets.ImageFolder(str(root), transform=transform, loader=read_image)
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


@dataclass(frozen=True)
class StateFile:
    """Where a protocol keeps its state after each epoch, and what that state belongs to: `stamp`
    (checkpoint identity, settings, inputs) must match for `--resume` to continue it."""

    path: Path
    stamp: dict[str, Any]


def state_path(out: Path) -> Path:
    """`r/byol.json` -> `r/byol.state.pt`: one resumable state per report."""
    return out.with_name(f"{out.stem}.state.pt")


def save_run_state(state: StateFile, variables: dict[str, Any]) -> None:
    """Atomic write of the named run variables (epoch, step, model, optimizer, history)."""
    atomic_save({"stamp": state.stamp, **variables}, state.path)


def load_run_state(state: StateFile) -> dict[str, Any]:
    """The variables `save_run_state` wrote, refused with one line if another run wrote them
    or if the file holds anything but tensors and plain data (`safe_torch_load`)."""
    if not state.path.is_file():
        raise EvalInputError(f"{state.path}: nothing to resume from; drop --resume to start afresh")
    loaded = safe_torch_load(state.path)
    saved: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
    stamp = saved.get("stamp")
    if not isinstance(stamp, dict):
        stamp = {}
    for key, value in state.stamp.items():
        if stamp.get(key) != value:
            what = key
            if key == "settings" and isinstance(old := stamp.get(key), dict):
                what = next((f"setting '{k}'" for k in value if old.get(k) != value[k]), key)
            raise EvalInputError(
                f"{state.path}: saved by another run ({what} differs); drop --resume to start "
                "afresh or choose another --out"
            )
    return saved


BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SGDRun:
    """What the epoch loop trains: `model` (the module saved and restored), its optimizer, the lr
    of every parameter group at every step, the data, and the loss of a batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    lrs: Sequence[np.ndarray]  # one per parameter group, indexed by the global step
    loader: DataLoader[Any]
    sampler: DistributedSampler[Any]
    batch_loss: BatchLoss  # (the possibly DDP-wrapped model, images, targets) -> loss


def train_epochs(
    run: SGDRun,
    epochs: int,
    seed: int,
    dist: DistInfo,
    state: StateFile | None = None,
    resume: bool = False,
) -> list[dict[str, float]]:
    """SGD over `epochs` epochs, saving `state` after each one (rank 0) and continuing from it with
    `resume`; returns the mean loss of every epoch. Resume is exact: the data order and the
    augmentation draws depend on (seed, epoch) only."""
    start, step, history = 0, 0, []
    if resume and state is not None:
        saved = load_run_state(state)
        run.model.load_state_dict(saved["model"])
        run.optimizer.load_state_dict(saved["optimizer"])
        start, step, history = saved["epoch"], saved["step"], list(saved["history"])
    model = run.model
    if dist.world_size > 1:
        ids = [dist.local_rank] if dist.device.type == "cuda" else None
        model = DistributedDataParallel(run.model, device_ids=ids)
    for epoch in range(start, epochs):
        run.sampler.set_epoch(epoch)
        torch.manual_seed(seed + epoch)
        model.train()
        total, batches = 0.0, 0
        for images, targets in run.loader:
            for group, lrs in zip(run.optimizer.param_groups, run.lrs, strict=True):
                group["lr"] = float(lrs[step])
            loss = run.batch_loss(model, images.to(dist.device), targets.to(dist.device))
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            step += 1
            total, batches = total + loss.item(), batches + 1
        history.append({"epoch": epoch + 1, "loss": total / max(batches, 1)})
        if state is not None and dist.is_main:
            save_run_state(
                state,
                {"epoch": epoch + 1, "step": step, "model": run.model.state_dict(),
                 "optimizer": run.optimizer.state_dict(), "history": history},
            )  # fmt: skip
        barrier()
    return history
