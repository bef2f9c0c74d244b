"""Stopping a run cleanly when the cluster asks: SLURM sends SIGTERM before pre-empting a job and
(with `--signal`, as submitit sets it) SIGUSR2 before its time limit; users send SIGUSR1.

On any of them the loop finishes the step it is in, saves `checkpoints/last.pt` and raises
`Preempted`; `orl pretrain` then exits with `PREEMPTED_EXIT` and `--resume auto` continues the run
exactly. Under DDP every rank must stop at the same step, so the ranks agree on the flag with one
all-reduce per step (a signal may reach them at different moments).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

import torch

from orl import distributed

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)
PREEMPTED_EXIT = 75  # sysexits' EX_TEMPFAIL: "try again later", what a requeue does


class Preempted(BaseException):
    """A stop signal arrived; the run's state is saved (`checkpoint`) at global `step`.

    A BaseException, like KeyboardInterrupt: it must pass through the handlers that turn errors
    into failed stages or one-line messages."""

    def __init__(self, signum: int, step: int, checkpoint: str) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at step {step}: saved {checkpoint}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint


class StopSignals:
    """While entered, SIGUSR1/SIGUSR2/SIGTERM only record that a stop was asked for; the
    previous handlers come back on exit. Outside the main thread (where Python cannot install
    handlers) nothing is installed and no stop is ever requested."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self.previous[sig] = signal.signal(sig, self._record)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum

    def requested(self, device: torch.device) -> int | None:
        """The stop signal if this or any other rank received one (every rank must call this at
        the same step), else None."""
        if not distributed.is_distributed():
            return self.received
        flag = torch.tensor([float(self.received or 0)], device=device)
        agreed = int(distributed.all_reduce_max(flag).item())  # 0 when no rank got a signal
        return agreed or None
