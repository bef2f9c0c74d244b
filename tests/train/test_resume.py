"""A run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run."""

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

pytestmark = pytest.mark.slow

SETTINGS = ["--set", "epochs=3", "--set", "save_every_steps=1", "--set", "deterministic=true"]


def _step(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["step"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


def test_kill_and_resume_is_bit_identical(tiny_config: Path, tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert main(["pretrain", "--config", str(tiny_config), "--out", str(reference), *SETTINGS]) == 0

    cmd = [
        sys.executable,
        "-m",
        "orl",
        "pretrain",
        "--config",
        str(tiny_config),
        "--out",
        str(killed),
        *SETTINGS,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    last = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while _step(last) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = _step(last)
    assert proc.returncode == -signal.SIGKILL
    assert 3 <= interrupted_at < 9, "the run must be killed part-way"

    assert (
        main(
            ["pretrain", "--config", str(tiny_config), "--out", str(killed), "--resume", *SETTINGS]
        )
        == 0
    )
    a = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["step"] == b["step"] == 9
    for part in ("online", "target", "optimizer"):
        assert _equal(a[part], b[part]), part
    # the metrics file continues where the checkpoint stopped: no step twice
    steps = [
        json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 10))
