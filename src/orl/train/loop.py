"""The one training loop for stage 1 (BYOL, or the SimCLR / MoCo v2 baselines), stage 3 (ORL) and
multi-crop BYOL (sec. 3.1-3.2), in the shape of DINO's `main_dino.py`.

`pretrain` reads top to bottom: build the run (`train/run.py`), start or resume it, then per step
`train_step` (lr from the precomputed schedule, the method's forward and loss, backward, optional
clipping, optimizer step, EMA update of the target or key encoder with the precomputed tau),
logging, the online kNN monitor every few epochs (`evaluate/monitor.py`), checkpointing, and a
stop at the step boundary when the cluster signals (`train/preempt.py`). Which method runs is
decided once, in `train/methods.py`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from orl import distributed
from orl.artifacts import atomic_write_text
from orl.checkpoint import FORMAT, VERSION, CheckpointError, atomic_save, load_checkpoint
from orl.config import dump_yaml, to_dict
from orl.data.views import Batch
from orl.evaluate.monitor import Monitor
from orl.models.byol import ema_update
from orl.train.config import PretrainConfig
from orl.train.logs import METRICS_FILE, RunLog, Throughput, last_logged_loss, truncate_metrics
from orl.train.objectives import Terms
from orl.train.preempt import Preempted, StopSignals
from orl.train.run import Run, build_run
from orl.train.state import RESUME_SETTINGS, RunState, check_resumable

LAST = "checkpoints/last.pt"


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


def pretrain(
    cfg: PretrainConfig,
    out: Path | None,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    bench_warmup: int = 0,
) -> RunSummary:
    """Train `cfg` into the run folder `out` (None: write nothing, as `orl bench train` does)."""
    started = time.perf_counter()
    run = build_run(cfg)
    monitor = Monitor(cfg.monitor) if cfg.monitor.enabled and out is not None else None
    state = run.state(started)
    if out is not None:
        start(run, state, out, resume)
    end = run.total_steps if max_steps is None else min(run.total_steps, state.step + max_steps)
    log = RunLog(out, run.dist.is_main, end, state.step, cfg.logging.wandb, config=to_dict(cfg))
    meter = Throughput(bench_warmup)
    last_loss = math.nan
    per_epoch = run.steps_per_epoch
    try:
        with StopSignals() as stop:
            for batch in run.loader(state.step):
                meter.data_ready()
                epoch = state.step // run.steps_per_epoch
                loss, terms = train_step(run, batch, state.step)
                state.step += 1
                state.images_seen += cfg.batch_size
                state.skipped.update(batch.skipped)
                if run.dist.device.type == "cuda" and log.due(state.step, cfg.log_every):
                    torch.cuda.synchronize()  # so that the meter times the GPU's work
                meter.step_done(cfg.batch_size)
                log.add([loss, *(terms[b] for b in run.parts.branches)])
                if log.due(state.step, cfg.log_every):
                    last_loss = write_log(run, log, state.step, epoch, meter.images_per_s)
                if out is not None:
                    save_due_checkpoints(run, state, out)
                # after the epoch's checkpoint: an unusable monitor image stops the run (one
                # line, exit 2) without losing the epoch
                if monitor is not None and monitor.due(state.step, per_epoch, run.total_steps):
                    backbone = run.parts.online.encoder.backbone
                    values = monitor.measure(backbone, run.dist.device)
                    log.write_monitor(state.step, state.step / per_epoch, values)
                if state.step >= end:
                    break
                if (signum := stop.requested(run.dist.device)) is not None:
                    raise stopped(run, state, out, signum)
    finally:
        log.close()
    if out is not None:
        save_checkpoint(run, state, out / LAST)
    return finish(run, state, out, meter, last_loss)


def stopped(run: Run, state: RunState, out: Path | None, signum: int) -> Preempted:
    """Save the run at this step boundary (a stop signal arrived) and say where."""
    if out is None:
        return Preempted(signum, state.step, "nothing (no run folder)")
    save_checkpoint(run, state, out / LAST)
    return Preempted(signum, state.step, str(out / LAST))


def train_step(run: Run, batch: Batch, step: int) -> tuple[torch.Tensor, Terms]:
    """One optimizer step, in DINO's order: lr, forward and loss, backward, clipping, optimizer
    step (through the AMP scaler), EMA update of the target network."""
    for group in run.optimizer.param_groups:
        group["lr"] = float(run.lrs[step])
    views = run.views(batch)
    amp = run.amp_dtype is not None
    with torch.autocast(run.dist.device.type, dtype=run.amp_dtype or torch.float32, enabled=amp):
        loss, terms = run.parts.objective(run.model, run.target_forward, views)
    if not torch.isfinite(loss):
        raise TrainingError(
            f"loss became {loss.item()} at step {step}: lower optim.lr or use precision=fp32/bf16"
        )
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.cfg.optim.clip_grad > 0:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.parts.online.parameters(), run.cfg.optim.clip_grad)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.parts.target is not None:
        ema_update(run.parts.target, run.parts.online.encoder, float(run.taus[step]))
    return loss, terms


def start(run: Run, state: RunState, out: Path, resume: bool) -> None:
    """Refuse to overwrite a run without `resume`; with it, restore `out/checkpoints/last.pt`
    after checking it is this run's. Then truncate the metrics to it and write config.yaml."""
    last = out / LAST
    if last.exists() and not resume:
        raise CheckpointError(
            f"{out}: already holds a run; pass --resume to continue it or choose another --out"
        )
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        settings = (*RESUME_SETTINGS, *run.parts.resume_settings)
        check_resumable(ckpt, run.cfg, run.images.fingerprint, settings)
        state.load_state_dict(ckpt)
    if run.dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        truncate_metrics(out / METRICS_FILE, state.step)
        atomic_write_text(dump_yaml(run.cfg), out / "config.yaml")


def write_log(run: Run, log: RunLog, step: int, epoch: int, images_per_s: float) -> float:
    """A metrics line: mean loss and terms since the last line, lr, tau, images/s."""
    extra = {"lr": float(run.lrs[step - 1])}
    if run.parts.target is not None:
        extra["tau"] = float(run.taus[step - 1])
    extra["images_per_s"] = images_per_s
    show = {"epoch": f"{epoch + 1}/{run.cfg.epochs}", "img/s": f"{images_per_s:.1f}"}
    return log.write(step, step / run.steps_per_epoch, run.parts.branches, extra, show)


def save_due_checkpoints(run: Run, state: RunState, out: Path) -> None:
    """`last.pt` every `save_every_steps` and at each epoch end; `epoch_NNNN.pt` every
    `save_every_epochs` epochs."""
    cfg, step, per_epoch = run.cfg, state.step, run.steps_per_epoch
    epoch_done = step % per_epoch == 0
    if (cfg.save_every_steps and step % cfg.save_every_steps == 0) or epoch_done:
        save_checkpoint(run, state, out / LAST)
    if epoch_done and cfg.save_every_epochs and (step // per_epoch) % cfg.save_every_epochs == 0:
        save_checkpoint(run, state, out / "checkpoints" / f"epoch_{step // per_epoch:04d}.pt")


def save_checkpoint(run: Run, state: RunState, path: Path) -> None:
    """Every rank's skipped files are gathered; rank 0 writes the run's state atomically."""
    for part in distributed.all_gather_objects(state.skipped):
        state.skipped.update(part)
    if not run.dist.is_main:
        return
    meta = {"format": FORMAT, "version": VERSION, "config": to_dict(run.cfg)}
    meta |= {"data_fingerprint": run.images.fingerprint}
    meta |= {"epoch": state.step // run.steps_per_epoch}
    atomic_save({**meta, **state.state_dict()}, path)


def finish(
    run: Run, state: RunState, out: Path | None, meter: Throughput, last_loss: float
) -> RunSummary:
    """The run's summary; rank 0 writes it and the list of skipped files into `out`."""
    summary = RunSummary(
        final_loss=last_loss if math.isfinite(last_loss) else last_logged_loss(out),
        wall_time_s=state.elapsed(),
        images_seen=state.images_seen,
        skipped=len(state.skipped),
        steps=state.step,
        images_per_s=meter.images_per_s,
        data_wait_fraction=meter.data_wait_fraction,
        data_fingerprint=run.images.fingerprint,
    )
    if out is not None and run.dist.is_main:
        atomic_write_text(json.dumps(asdict(summary), indent=2) + "\n", out / "summary.json")
        atomic_write_text(
            "".join(f"{p}\t{reason}\n" for p, reason in sorted(state.skipped.items())),
            out / "skipped.txt",
        )
    distributed.barrier()
    return summary
