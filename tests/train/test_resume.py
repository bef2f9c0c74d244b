"""A run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run, for BYOL and
the SimCLR (LARS state) and MoCo v2 (key encoder, queue and its pointer) baselines."""

from __future__ import annotations

import json
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
METHODS = {
    "byol": [],
    "simclr": ["--set", "method=simclr", "--set", "optim.optimizer=lars"],
    # a queue of 20 keys fills up in 2.5 steps of 8: the pointer wraps around inside an enqueue
    "mocov2": ["--set", "method=mocov2", "--set", "contrastive.queue_size=20"],
}
STATE = {"byol": ("target",), "simclr": (), "mocov2": ("target", "queue")}


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


@pytest.mark.parametrize("method", list(METHODS))
def test_kill_and_resume_is_bit_identical(tiny_config: Path, tmp_path: Path, method: str) -> None:
    settings = [*SETTINGS, *METHODS[method]]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert main(["pretrain", "--config", str(tiny_config), "--out", str(reference), *settings]) == 0

    cmd = [
        sys.executable,
        "-m",
        "orl",
        "pretrain",
        "--config",
        str(tiny_config),
        "--out",
        str(killed),
        *settings,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
            ["pretrain", "--config", str(tiny_config), "--out", str(killed), "--resume", *settings]
        )
        == 0
    )
    a = torch.load(reference / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["step"] == b["step"] == 9
    assert {"target", "queue"} & set(a) == set(STATE[method])
    for part in ("online", "optimizer", *STATE[method]):
        assert _equal(a[part], b[part]), part
    # the metrics file continues where the checkpoint stopped: no step twice
    steps = [
        json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 10))
