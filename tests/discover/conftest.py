"""Tiny fixtures for stage 2: a resnet18 checkpoint with small heads, a folder of small photos."""

from __future__ import annotations

from pathlib import Path

import pytest
from discover_helpers import draw_scene, tiny_config
from tests.checkpoints import save_tiny_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_tiny_checkpoint(path, seed=0, proj_hidden=64, proj_dim=32)
    return path


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 scenes: one exact duplicate, one grayscale, one tiny, one corrupt file."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(5):
        draw_scene(i).save(root / f"s{i}.jpg", quality=95)
    (root / "s5_dup.jpg").write_bytes((root / "s0.jpg").read_bytes())
    draw_scene(6).convert("L").save(root / "s6_gray.png")
    draw_scene(7, (20, 14)).save(root / "s7_tiny.png")
    (root / "s8_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path, photos: Path) -> Path:
    """One uninterrupted single-process run with the tiny settings."""
    from orl.discover.pipeline import discover

    out = tmp_path_factory.mktemp("baseline") / "corr"
    return discover(tiny_config(), checkpoint, [str(photos)], out, resume=False)
