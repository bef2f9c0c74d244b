"""`orl submit`: the same `orl pretrain` job on a SLURM cluster through submitit (as DINO, DINOv2
and VISSL launch theirs), requeued when it is pre-empted or reaches its time limit.

One SLURM task per GPU; each task exports the torch.distributed variables submitit derives from
SLURM and runs `pretrain`, which joins the process group as under torchrun. Before the time limit
SLURM sends SIGUSR2 (`--signal=USR2@signal_delay_s`, set by submitit) and before a pre-emption
SIGTERM: the loop saves `checkpoints/last.pt` at the next step boundary and raises `Preempted`
(`train/preempt.py`); the job then hands over to submitit's own handler, which asks `checkpoint()`
for the job to run next (this job with `resume=True`, i.e. `--resume auto`), requeues it and
exits. The requeued job resumes from `last.pt` exactly.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orl.config import ConfigError, load_config
from orl.train.config import PretrainConfig
from orl.train.loop import pretrain
from orl.train.preempt import Preempted

SUBMITIT_FOLDER = "submitit"  # inside the run folder: job scripts, pickles, logs


@dataclass(frozen=True)
class Cluster:
    """What to ask SLURM for."""

    nodes: int = 1
    gpus_per_node: int = 8
    partition: str | None = None
    time_min: int = 4320  # the job's time limit; a requeued job gets it afresh
    cpus_per_task: int = 10  # data-loading workers of one GPU's process, plus one
    signal_delay_s: int = 120  # SIGUSR2 this long before the time limit
    max_timeouts: int = 100  # requeues after reaching the time limit (pre-emptions are free)
    name: str = "orl"


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError as exc:
        raise ConfigError("orl submit needs submitit: pip install 'orl[slurm]'") from exc
    return submitit


@dataclass(frozen=True)
class PretrainJob:
    """The callable every SLURM task runs: `orl pretrain --config CONFIG --set ... --out OUT`.
    submitit calls `checkpoint()` on the pre-emption signal (`submitit.helpers.Checkpointable`'s
    protocol) to get the job it requeues."""

    config: str
    overrides: tuple[str, ...]
    out: str
    resume: bool = False

    def __call__(self) -> dict[str, Any] | None:
        submitit = _import_submitit()
        submitit.helpers.TorchDistributedEnvironment().export(
            set_cuda_visible_devices=False, overwrite=True
        )
        # submitit's handler: checkpoint() -> requeue -> exit (rank 0); the loop replaces it
        # while training, so keep it to hand over to once the checkpoint is saved.
        requeue = signal.getsignal(preemption_signal())
        cfg = load_config(PretrainConfig, Path(self.config), self.overrides)
        try:
            summary = pretrain(cfg, Path(self.out), resume=self.resume)
        except Preempted as stop:
            if callable(requeue):
                requeue(stop.signum, None)  # on rank 0 this requeues and exits
            return None
        return dataclasses.asdict(summary)

    def checkpoint(self) -> Any:
        """The job to requeue: the same one, resuming from `last.pt` if there is one."""
        submitit = _import_submitit()
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self, resume=True))


def preemption_signal() -> signal.Signals:
    """The signal submitit requeues on: SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL names another."""
    name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    sig: signal.Signals = getattr(signal, name)
    return sig


def build_executor(out: Path, cluster: Cluster, executor_name: str | None = None) -> Any:
    """A submitit executor for SLURM (`executor_name=None`: detected; "local": submitit's local
    executor, which runs the tasks as processes of this machine and requeues them the same way),
    writing its scripts and logs under `out/submitit/JOB_ID/`."""
    submitit = _import_submitit()
    executor = submitit.AutoExecutor(
        folder=out / SUBMITIT_FOLDER / "%j",
        cluster=executor_name,
        slurm_max_num_timeout=cluster.max_timeouts,
        local_max_num_timeout=cluster.max_timeouts,
    )
    executor.update_parameters(
        name=cluster.name,
        nodes=cluster.nodes,
        gpus_per_node=cluster.gpus_per_node,
        tasks_per_node=max(1, cluster.gpus_per_node),  # one process per GPU
        cpus_per_task=cluster.cpus_per_task,
        timeout_min=cluster.time_min,
        slurm_partition=cluster.partition,
        slurm_signal_delay_s=cluster.signal_delay_s,
    )
    return executor


def submit(job: PretrainJob, cluster: Cluster, executor_name: str | None = None) -> Any:
    """Submit `job`; returns the submitit job (`.job_id`, `.result()`)."""
    return build_executor(Path(job.out), cluster, executor_name).submit(job)
