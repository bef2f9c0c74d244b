"""Helpers shared by the stage-2 tests: tiny settings, drawn scenes, store comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from orl.discover.config import DiscoverConfig

TINY = {
    "k": 3,
    "knn_resize": 64,
    "knn_crop": 56,
    "roi_size": 48,
    "min_size": 16,
    "shard_size": 3,
    "ss_max_side": 128,
    "proposal_workers": 1,
    "batch_size": 16,
    "device": "cpu",
}


def tiny_config(**overrides: object) -> DiscoverConfig:
    return DiscoverConfig(**{**TINY, **overrides})  # type: ignore[arg-type]


def draw_scene(seed: int, size: tuple[int, int] = (120, 90)) -> Image.Image:
    """A few coloured rectangles and ellipses on a gradient: enough structure for proposals."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * rng.uniform(0.2, 1, 3)
    img = Image.fromarray(np.broadcast_to(base, (h, w, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        x1 = x0 + int(rng.integers(w // 6, w - x0 + 1))
        y1 = y0 + int(rng.integers(h // 6, h - y0 + 1))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return img


def store_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a store, loaded into memory, for exact comparisons."""
    from orl.discover.store import ARRAYS

    return {name: np.load(path / f"{name}.npy") for name in ARRAYS}


def assert_same_store(a: Path, b: Path) -> None:
    import json

    left, right = store_arrays(a), store_arrays(b)
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)
    meta_a = json.loads((a / "meta.json").read_text())
    meta_b = json.loads((b / "meta.json").read_text())
    assert meta_a == meta_b
