"""Everything a training run builds once before its first step (sec. 3.2): the method's parts on
the device, the optimizer, the AMP scaler, the per-step schedules and the data.

The same code runs in one CPU process and under `torchrun` on N GPUs x M nodes: SyncBN on GPUs,
DDP around the online network, the lr scaled by the global batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from orl.checkpoint import CheckpointError, load_checkpoint
from orl.data.encoded import device_views
from orl.data.sampler import StepBatchSampler, steps_per_epoch
from orl.data.sources import ImageList, resolve_sources
from orl.data.views import Batch, collate
from orl.distributed import DistInfo, init_distributed
from orl.models.byol import Views
from orl.train.config import PretrainConfig
from orl.train.lars import LARS, lars_param_groups
from orl.train.methods import MethodParts, build_method
from orl.train.schedules import lr_schedule, tau_schedule
from orl.train.state import RunState, Stateful, seed_everything


@dataclass(frozen=True)
class Run:
    """A training run's fixed parts. `model` and `target_forward` are the online and EMA networks
    as a step calls them (DDP-wrapped, compiled); `parts` holds the modules themselves."""

    cfg: PretrainConfig
    dist: DistInfo
    images: ImageList
    parts: MethodParts
    model: nn.Module
    target_forward: nn.Module | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    lrs: np.ndarray  # per global step
    taus: np.ndarray  # per global step
    steps_per_epoch: int
    amp_dtype: torch.dtype | None  # None: fp32
    memory_format: torch.memory_format

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs

    def state(self, started: float) -> RunState:
        """The run's resumable state over its networks, optimizer and scaler; this process's
        clock started at `started` (`time.perf_counter`)."""
        p = self.parts
        objects: dict[str, Stateful | None] = {"online": p.online, "target": p.target}
        objects |= {"queue": p.queue, "optimizer": self.optimizer, "scaler": self.scaler}
        return RunState({k: v for k, v in objects.items() if v is not None}, started=started)

    def loader(self, start_step: int) -> Iterable[Batch]:
        """The batches of this rank from global step `start_step` to the end of the run."""
        cfg = self.cfg
        sampler = StepBatchSampler(
            len(self.images),
            cfg.batch_size,
            cfg.epochs,
            seed=cfg.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            start_step=start_step,
            shard_starts=self.images.shard_starts(),
        )
        batches: DataLoader[Any] = DataLoader(
            self.parts.dataset,
            batch_sampler=sampler,
            num_workers=cfg.workers,
            collate_fn=collate,
            pin_memory=self.dist.device.type == "cuda",
            prefetch_factor=4 if cfg.workers > 0 else None,
            persistent_workers=False,  # one iterator spans every epoch: nothing to persist
        )
        return batches

    def views(self, batch: Batch) -> Views:
        """The batch's views on the device, normalised, in the run's memory format: the workers'
        uint8 views (`augment.backend: pil`), or decoded and augmented here (`gpu`)."""
        return device_views(batch, self.dist.device, self.memory_format, self.cfg.augment)


def build_run(cfg: PretrainConfig) -> Run:
    """Join the process group, seed, read the data set and build everything a step needs."""
    dist = init_distributed(cfg.device)
    device = dist.device
    seed_everything(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    images = resolve_sources(cfg.data)
    per_epoch = steps_per_epoch(len(images), cfg.batch_size, dist.world_size)
    if (cfg.batch_size // dist.world_size) % cfg.model.bn_splits:
        raise ValueError("'model.bn_splits' must divide the per-device batch")

    method = build_method(cfg, images)
    method.dataset.require_usable()  # nothing decodable: one line before any work
    parts = _on_device(cfg, dist, method)
    model, target_forward = _as_called(cfg, dist, parts)
    amp_dtype = _amp_dtype(cfg, device)
    # LR scaled by the global batch over all GPUs and nodes (sec. 3.2): 0.2 x 512/256 = 0.4.
    o = cfg.optim
    total = per_epoch * cfg.epochs
    lrs = lr_schedule(
        o.lr * cfg.batch_size / 256,
        total,
        per_epoch,
        o.warmup_epochs,
        o.warmup_ratio,
        o.cosine_per_epoch,
    )
    assert cfg.model.tau_end is not None  # resolved by PretrainConfig
    return Run(
        cfg=cfg,
        dist=dist,
        images=images,
        parts=parts,
        model=model,
        target_forward=target_forward,
        optimizer=build_optimizer(parts.online, cfg),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        lrs=lrs,
        taus=tau_schedule(cfg.model.tau, cfg.model.tau_end, total),
        steps_per_epoch=per_epoch,
        amp_dtype=amp_dtype,
        memory_format=torch.channels_last if _channels_last(cfg, dist) else torch.contiguous_format,
    )


def _on_device(cfg: PretrainConfig, dist: DistInfo, parts: MethodParts) -> MethodParts:
    """The method's modules initialised (`init_from`), with SyncBN on several GPUs, on the
    device in training mode (batch statistics in the target too, as the authors' BYOL and MoCo)."""
    if cfg.init_from:
        initialise_from(parts, Path(cfg.init_from))
    if dist.world_size > 1 and dist.device.type == "cuda" and cfg.model.sync_bn:
        convert = nn.SyncBatchNorm.convert_sync_batchnorm
        target = convert(parts.target) if parts.target is not None else None
        parts = dataclasses.replace(parts, online=convert(parts.online), target=target)
    for module in (parts.online, parts.target, parts.queue):
        if module is not None:
            module.to(dist.device)
            if _channels_last(cfg, dist):  # moves only 4-d tensors (conv weights)
                module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            module.train()
    return parts


def _as_called(
    cfg: PretrainConfig, dist: DistInfo, parts: MethodParts
) -> tuple[nn.Module, nn.Module | None]:
    """The online network as a step calls it (DDP on several processes, compiled with
    `compile`), and the target likewise (compiled only: it is never trained)."""
    model: nn.Module = parts.online
    if dist.world_size > 1:
        ids = [dist.device.index] if dist.device.type == "cuda" else None
        model = DistributedDataParallel(parts.online, device_ids=ids)
    target: nn.Module | None = parts.target
    if cfg.compile:
        model = torch.compile(model)  # type: ignore[assignment]
        if parts.target is not None:
            target = torch.compile(parts.target)  # type: ignore[assignment]
    return model, target


def _channels_last(cfg: PretrainConfig, dist: DistInfo) -> bool:
    return cfg.channels_last and dist.device.type == "cuda"


def _amp_dtype(cfg: PretrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` (auto: bf16 on GPU, fp32 on CPU); None for fp32."""
    mode = cfg.precision
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" else "fp32"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def initialise_from(parts: MethodParts, path: Path) -> None:
    """Copy the encoder (and any predictor of the same branch) from another run's checkpoint; the
    EMA network starts as the same copy."""
    state = load_checkpoint(path)["online"]
    own = parts.online.state_dict()
    missing_encoder = [k for k in own if k.startswith("encoder.") and k not in state]
    if missing_encoder:
        raise CheckpointError(f"{path}: its encoder does not match ({missing_encoder[0]} missing)")
    own.update({k: v for k, v in state.items() if k in own and own[k].shape == v.shape})
    parts.online.load_state_dict(own)
    if parts.target is not None:
        parts.target.load_state_dict(parts.online.encoder.state_dict())


def build_optimizer(online: nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """SGD, momentum 0.9, weight decay on all parameters (the authors exclude none; fused into one
    kernel when the parameters are on a GPU), or SimCLR's LARS (biases and BN excluded from decay
    and adaptation); the lr is set from the precomputed schedule before every step."""
    if cfg.optim.optimizer == "lars":
        return LARS(
            lars_param_groups(online, cfg.optim.weight_decay),
            lr=0.0,
            momentum=cfg.optim.momentum,
            trust_coefficient=cfg.optim.trust_coefficient,
        )
    params = list(online.parameters())
    return torch.optim.SGD(
        params,
        lr=0.0,
        momentum=cfg.optim.momentum,
        weight_decay=cfg.optim.weight_decay,
        fused=all(p.is_cuda for p in params) or None,  # one kernel per step on GPUs
    )
