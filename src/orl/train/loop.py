"""The one training loop for stage 1 (BYOL, or the SimCLR / MoCo v2 baselines), stage 3 (ORL) and
multi-crop BYOL (sec. 3.1-3.2).

Read top to bottom: set-up, resume, then per step: lr from the precomputed schedule, the method's
forward and loss (`train/objectives.py`), backward, optional clipping, optimizer step, EMA update
of the target (BYOL) or key encoder (MoCo) with the precomputed tau, logging and checkpointing.
The same code runs in one CPU process and under `torchrun` on N GPUs x M nodes (DDP, SyncBN,
global-batch lr scaling, rank 0 writes).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from orl.artifacts import atomic_write_text
from orl.augment import normalize_on_device
from orl.config import dump_yaml, to_dict
from orl.data.sampler import StepBatchSampler
from orl.data.sources import resolve_sources
from orl.data.views import Batch, collate
from orl.models.byol import ema_update
from orl.train import distributed
from orl.train.checkpoint import FORMAT, VERSION, CheckpointError, atomic_save, load_checkpoint
from orl.train.config import PretrainConfig
from orl.train.logs import RunLog
from orl.train.objectives import byol_objective, mocov2_objective, simclr_objective
from orl.train.schedules import lr_schedule, tau_schedule
from orl.train.setup import (
    build_dataset,
    build_online,
    build_optimizer,
    build_queue,
    build_target,
    check_resumable,
    initialise_from,
    loss_weights,
)
from orl.train.state import rng_state, seed_everything, set_rng_state


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. a non-finite loss); the message says what to change."""


@dataclass(frozen=True)
class RunSummary:
    final_loss: float
    wall_time_s: float
    images_seen: int
    skipped: int
    steps: int
    images_per_s: float  # steady state: measured after the first `bench_warmup` steps
    data_wait_fraction: float  # share of step time spent waiting for the data loader
    data_fingerprint: str  # the data set trained on (also in every checkpoint)


def _precision(cfg: PretrainConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    mode = cfg.precision
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" else "fp32"
    if mode == "fp32":
        return False, torch.float32
    return True, torch.bfloat16 if mode == "bf16" else torch.float16


def pretrain(
    cfg: PretrainConfig,
    out: Path | None,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    bench_warmup: int = 0,
) -> RunSummary:
    """Train `cfg` into the run folder `out` (None: write nothing, as `orl bench train` does)."""
    t_start = time.perf_counter()
    dist = distributed.init_distributed(cfg.device)
    device = dist.device
    seed_everything(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    images = resolve_sources(cfg.data)
    dataset = build_dataset(cfg, images)
    dataset.require_usable()
    probe = StepBatchSampler(
        len(images), cfg.batch_size, cfg.epochs, world_size=dist.world_size, seed=cfg.seed
    )
    steps_per_epoch, total_steps = probe.steps_per_epoch, probe.total_steps
    if cfg.model.bn_splits > 1 and probe.local_batch % cfg.model.bn_splits:
        raise ValueError("'model.bn_splits' must divide the per-device batch")

    online = build_online(cfg)
    if cfg.init_from:
        initialise_from(online, Path(cfg.init_from))
    if dist.world_size > 1 and device.type == "cuda" and cfg.model.sync_bn:
        online = torch.nn.SyncBatchNorm.convert_sync_batchnorm(online)
    target = build_target(cfg, online)  # None for SimCLR
    queue = build_queue(cfg)  # MoCo v2 only
    # the named modules a checkpoint holds and resume restores
    modules: dict[str, torch.nn.Module] = {"online": online}
    if target is not None:
        modules["target"] = target
    if queue is not None:
        modules["queue"] = queue
    channels_last = cfg.channels_last and device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for module in modules.values():
        module.to(device)
        if channels_last:  # moves only 4-d tensors (conv weights)
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = build_optimizer(online, cfg)
    amp, amp_dtype = _precision(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)

    # LR scaled by the global batch over all GPUs and nodes (sec. 3.2): 0.2 x 512/256 = 0.4.
    peak_lr = cfg.optim.lr * cfg.batch_size / 256
    lrs = lr_schedule(
        peak_lr,
        total_steps,
        steps_per_epoch,
        cfg.optim.warmup_epochs,
        cfg.optim.warmup_ratio,
        cfg.optim.cosine_per_epoch,
    )
    # BYOL's target: tau rises to 1 by a cosine; MoCo's key encoder: constant momentum (0.999)
    if cfg.method == "mocov2":
        taus = np.full(total_steps, cfg.model.tau)
    else:
        taus = tau_schedule(cfg.model.tau, total_steps)
    weights = loss_weights(cfg)

    cfg_dict = to_dict(cfg)
    step, skipped, elapsed_before, images_seen = 0, {}, 0.0, 0
    last_path = out / "checkpoints" / "last.pt" if out is not None else None
    if out is not None and last_path is not None:
        if last_path.exists() and not resume:
            raise CheckpointError(
                f"{out}: already holds a run; pass --resume to continue it or choose another --out"
            )
        if resume and last_path.exists():
            ckpt = load_checkpoint(last_path)
            check_resumable(ckpt, cfg_dict, images.fingerprint)
            for name, module in modules.items():
                module.load_state_dict(ckpt[name])
            optimizer.load_state_dict(ckpt["optimizer"])
            scaler.load_state_dict(ckpt["scaler"])
            set_rng_state(ckpt["rng"])
            step, elapsed_before = int(ckpt["step"]), float(ckpt["wall_time_s"])
            skipped, images_seen = dict(ckpt["skipped"]), int(ckpt["images_seen"])
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            _truncate_metrics(out / "metrics.jsonl", step)
            atomic_write_text(dump_yaml(cfg), out / "config.yaml")
    end_step = total_steps if max_steps is None else min(total_steps, step + max_steps)

    model: torch.nn.Module = online
    if dist.world_size > 1:
        model = DistributedDataParallel(
            online, device_ids=[device.index] if device.type == "cuda" else None
        )
    forward_target = target
    if cfg.compile:
        model = torch.compile(model)  # type: ignore[assignment]
        if target is not None:
            forward_target = torch.compile(target)  # type: ignore[assignment]

    sampler = StepBatchSampler(
        len(images),
        cfg.batch_size,
        cfg.epochs,
        seed=cfg.seed,
        rank=dist.rank,
        world_size=dist.world_size,
        start_step=step,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=cfg.workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if cfg.workers > 0 else None,
        persistent_workers=False,  # one iterator spans every epoch: nothing to persist
    )

    def save(path: Path, epoch: int) -> None:
        all_skipped = {
            k: v for part in distributed.all_gather_objects(skipped) for k, v in part.items()
        }
        skipped.update(all_skipped)
        if not dist.is_main:
            return
        atomic_save(
            {
                "format": FORMAT,
                "version": VERSION,
                "config": cfg_dict,
                "data_fingerprint": images.fingerprint,
                "epoch": epoch,
                "step": step,
                **{name: module.state_dict() for name, module in modules.items()},
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng_state(),
                "skipped": sorted(skipped.items()),
                "images_seen": images_seen,
                "wall_time_s": elapsed_before + time.perf_counter() - t_start,
            },
            path,
        )

    log = RunLog(out, dist.is_main, total=end_step, initial=step)
    for module in modules.values():
        module.train()  # batch statistics in the target too, as in the authors' BYOL and MoCo
    loss_window: list[list[float]] = []  # per step: total, then each branch's term
    last_loss = math.nan
    bench_images, bench_time, wait_time, busy_time = 0, 0.0, 0.0, 0.0
    t_prev = time.perf_counter()
    start_step = step
    with contextlib.ExitStack() as stack:
        stack.callback(log.close)
        for batch in loader:
            batch: Batch  # type: ignore[no-redef]
            t_data = time.perf_counter()
            epoch = step // steps_per_epoch
            for group in optimizer.param_groups:
                group["lr"] = float(lrs[step])
            views = {
                branch: [
                    normalize_on_device(v.to(device, non_blocking=True)).contiguous(
                        memory_format=memory_format
                    )
                    for v in vs
                ]
                for branch, vs in batch.views.items()
            }
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                if cfg.method == "simclr":
                    loss, terms = simclr_objective(model, views, cfg.contrastive.temperature)
                elif cfg.method == "mocov2":
                    assert forward_target is not None and queue is not None
                    loss, terms = mocov2_objective(
                        model, forward_target, queue, views, cfg.contrastive.temperature
                    )
                else:
                    assert forward_target is not None
                    loss, terms = byol_objective(model, forward_target, views, weights)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {loss.item()} at step {step}: lower optim.lr or use "
                    "precision=fp32/bf16"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.clip_grad > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(online.parameters(), cfg.optim.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            if target is not None:
                ema_update(target, online.encoder, float(taus[step]))
            step += 1
            images_seen += cfg.batch_size
            for path, reason in batch.skipped:
                skipped[path] = reason

            if device.type == "cuda" and (step % cfg.log_every == 0 or step == end_step):
                torch.cuda.synchronize()
            t_now = time.perf_counter()
            if step - start_step > bench_warmup:
                bench_images += cfg.batch_size
                bench_time += t_now - t_prev
                wait_time += t_data - t_prev
                busy_time += t_now - t_prev
            t_prev = t_now
            loss_window.append([loss.item()] + [terms[b].item() for b in weights])
            log.advance()
            if step % cfg.log_every == 0 or step == end_step:
                # mean over the steps since the last log line and over ranks
                stats = distributed.all_reduce_mean(torch.tensor(loss_window).mean(0)).tolist()
                last_loss = stats[0]
                loss_window.clear()
                ips = bench_images / bench_time if bench_time > 0 else math.nan
                record: dict[str, Any] = {
                    "step": step,
                    "epoch": step / steps_per_epoch,
                    "loss": last_loss,
                    **{f"loss_{b}": v for b, v in zip(weights, stats[1:], strict=True)},
                    "lr": float(lrs[step - 1]),
                    **({"tau": float(taus[step - 1])} if target is not None else {}),
                    "images_per_s": ips,
                }
                log.step(
                    record,
                    {
                        "epoch": f"{epoch + 1}/{cfg.epochs}",
                        "loss": f"{last_loss:.4f}",
                        "img/s": f"{ips:.1f}",
                    },
                )
            if out is not None:
                epoch_done = step % steps_per_epoch == 0
                if (cfg.save_every_steps and step % cfg.save_every_steps == 0) or epoch_done:
                    save(out / "checkpoints" / "last.pt", step // steps_per_epoch)
                if (
                    epoch_done
                    and cfg.save_every_epochs
                    and (step // steps_per_epoch) % cfg.save_every_epochs == 0
                ):
                    save(
                        out / "checkpoints" / f"epoch_{step // steps_per_epoch:04d}.pt",
                        step // steps_per_epoch,
                    )
            if step >= end_step:
                break

    wall = elapsed_before + time.perf_counter() - t_start
    if out is not None:
        save(out / "checkpoints" / "last.pt", step // steps_per_epoch)
    summary = RunSummary(
        final_loss=last_loss if math.isfinite(last_loss) else _last_logged_loss(out),
        wall_time_s=wall,
        images_seen=images_seen,
        skipped=len(skipped),
        steps=step,
        images_per_s=bench_images / bench_time if bench_time > 0 else math.nan,
        data_wait_fraction=wait_time / busy_time if busy_time > 0 else math.nan,
        data_fingerprint=images.fingerprint,
    )
    if out is not None and dist.is_main:
        atomic_write_text(json.dumps(asdict(summary), indent=2) + "\n", out / "summary.json")
        atomic_write_text(
            "".join(f"{p}\t{reason}\n" for p, reason in sorted(skipped.items())),
            out / "skipped.txt",
        )
    distributed.barrier()
    return summary


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after the checkpoint a resumed run restarts from."""
    if not path.exists():
        return
    keep = [
        x for x in path.read_text(encoding="utf-8").splitlines() if json.loads(x)["step"] <= step
    ]
    atomic_write_text("".join(line + "\n" for line in keep), path)


def _last_logged_loss(out: Path | None) -> float:
    """The loss of the last metrics line (a resumed run that had nothing left to do)."""
    if out is None or not (out / "metrics.jsonl").exists():
        return math.nan
    lines = (out / "metrics.jsonl").read_text(encoding="utf-8").strip().splitlines()
    value = json.loads(lines[-1]).get("loss") if lines else None
    return float(value) if value is not None else math.nan
