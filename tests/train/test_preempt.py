"""Pre-emption: SIGUSR1/SIGTERM make a running `orl pretrain` save at the next step boundary and
exit with PREEMPTED_EXIT; `--resume auto` then ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from orl.cli import main
from orl.train.preempt import PREEMPTED_EXIT, StopSignals
from tests.train.test_resume import _equal

pytestmark = pytest.mark.slow

# 3 epochs of 3 steps; last.pt only at epoch ends, so a checkpoint at another step can only come
# from the signal
SETTINGS = ["--set", "epochs=3", "--set", "save_every_steps=0", "--set", "deterministic=true"]


def logged_steps(run: Path) -> list[int]:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line)["step"] for line in lines if line.endswith("}")]


def assert_same_final_run(reference: Path, run: Path, steps: int = 9) -> None:
    """`run` (stopped and resumed) ends with the weights, EMA and optimizer state of the
    uninterrupted `reference`, bit for bit, and logged every step once."""
    a = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == steps
    for part in ("online", "target", "optimizer"):
        assert _equal(a[part], b[part]), part
    assert logged_steps(run) == list(range(1, steps + 1))


def run_until(cmd: list[str], run: Path, steps: int) -> subprocess.Popen[str]:
    """Start `cmd` and return once it has logged `steps` steps (or ended)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while len(logged_steps(run)) < steps and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    return proc


def test_signal_saves_at_the_step_boundary_and_resume_auto_is_exact(
    tiny_config: Path, tmp_path: Path
) -> None:
    """SIGUSR1 here; SIGTERM takes the same path in tests/train/test_submit.py (the cluster's
    pre-emption signal, forwarded by submitit's controller)."""
    sig = signal.SIGUSR1
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    argv = ["pretrain", "--config", str(tiny_config), *SETTINGS]
    assert main([*argv, "--out", str(reference)]) == 0

    proc = run_until([sys.executable, "-m", "orl", *argv, "--out", str(stopped)], stopped, 4)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == PREEMPTED_EXIT, err
    saved = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    # the checkpoint is the step boundary the run stopped at: its last logged step, mid-run
    assert saved["step"] == logged_steps(stopped)[-1]
    assert 4 <= saved["step"] < 9
    assert f"stopped by {sig.name} at step {saved['step']}" in err and "--resume auto" in err
    assert not (stopped / "summary.json").exists()  # the run is not finished

    assert main([*argv, "--out", str(stopped), "--resume", "auto"]) == 0
    assert_same_final_run(reference, stopped)


def test_resume_auto_starts_a_new_run_and_finishes_a_done_one(
    tiny_config: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    argv = ["pretrain", "--config", str(tiny_config), "--out", str(run), "--set", "epochs=1"]
    assert main([*argv, "--resume", "auto"]) == 0  # nothing to resume: starts
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
    assert main([*argv, "--resume"]) == 0  # bare --resume means auto
    assert logged_steps(run) == [1, 2, 3]


def test_stop_signals_are_recorded_then_the_old_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with StopSignals() as stop:
        assert stop.requested(torch.device("cpu")) is None
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.01)
        assert stop.requested(torch.device("cpu")) == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) is before
