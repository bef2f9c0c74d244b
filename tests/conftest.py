"""Shared fixtures: tiny generated image folders and a tiny training configuration."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

# One torch thread here and in every process a test starts (they inherit the environment: CLI
# subprocesses, torchrun ranks, submitit's local jobs): the suite's bit-identity checks compare
# runs from different processes, and another thread count changes the float summation order.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


def write_images(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (40, 48)) -> Path:
    """`n` random-noise JPEGs with smooth colour blobs, so crops differ from each other."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = size[0] + i % 5, size[1] + i % 7
        base = rng.random((1, 1, 3)) * 255
        noise = rng.normal(0, 40, (h, w, 3))
        img = np.clip(base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img_{i:03d}.jpg", quality=90)
    return folder


TINY_CONFIG = {
    "epochs": 2,
    "arch": "resnet18",
    "method": "byol",
    "batch_size": 8,
    "workers": 0,
    "log_every": 1,
    "save_every_epochs": 0,
    "model": {"proj_hidden": 32, "proj_dim": 16, "pred_hidden": 32},
    "augment": {"image_size": 32, "patch_size": 16},
    "optim": {"warmup_epochs": 1},
}


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    return write_images(tmp_path / "images", 24)


@pytest.fixture
def tiny_config(tmp_path: Path, image_dir: Path) -> Path:
    cfg = dict(TINY_CONFIG, data=str(image_dir))
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def disk_full_midway(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call the returned function to make plain `Path.write_text`/`write_bytes` write half of
    their data and then fail as a full disk would: a file written in place is then torn, one
    written atomically is untouched."""

    def half_then_fail(self: Path, data: str | bytes, *args: object, **kwargs: object) -> int:
        raw = data.encode() if isinstance(data, str) else data
        with open(self, "wb") as f:
            f.write(raw[: len(raw) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    def start() -> None:
        monkeypatch.setattr(Path, "write_text", half_then_fail)
        monkeypatch.setattr(Path, "write_bytes", half_then_fail)

    return start
