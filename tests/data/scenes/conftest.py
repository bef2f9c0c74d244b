"""Small synthetic stamps and backgrounds, so that no test downloads the 160 MB of packages."""

from __future__ import annotations

import numpy as np
import pytest

from orl.data.scenes.compose import Background, Stamp, prepare_background, prepare_stamp

CATEGORIES = ("disc", "bar", "square", "ring")
COLOURS = ((220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 210, 40))
SIZE = 64


def synthetic_rgba(category: int, seed: int) -> np.ndarray:
    """A noisy cut-out of the category's shape and colour with a 1-px soft edge, on a margin."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(30, 60)), int(rng.integers(30, 60))
    if category == 1:  # long and thin: exercises scaling by area and the fit-in-the-scene clamp
        w = h // 5 + 2
    y, x = np.mgrid[:h, :w]
    u, v = (x - (w - 1) / 2) / (w / 2 - 2), (y - (h - 1) / 2) / (h / 2 - 2)
    radius = np.sqrt(u**2 + v**2)
    box = np.maximum(abs(u), abs(v)) <= 1
    inside = (radius <= 1, box, box, (radius <= 1) & (radius >= 0.5))[category]
    alpha = inside.astype(np.float32)
    alpha[1:-1, 1:-1] = np.maximum(alpha[1:-1, 1:-1], 0.5 * inside[:-2, 1:-1])  # soft edge
    colour = np.clip(np.add(COLOURS[category], rng.normal(0, 15, (h, w, 3))), 0, 255)
    rgba = np.zeros((h + 6, w + 6, 4), dtype=np.uint8)  # transparent margin, cropped away
    rgba[3:-3, 3:-3, :3] = colour
    rgba[3:-3, 3:-3, 3] = np.rint(alpha * 255)
    return rgba


def synthetic_stamps(per_category: int = 4) -> list[Stamp]:
    return [
        prepare_stamp(synthetic_rgba(c, 10 * c + j), 10 * c + j, c)
        for c in range(len(CATEGORIES))
        for j in range(per_category)
    ]


def synthetic_backgrounds(count: int = 6, size: int = SIZE) -> list[Background]:
    """Smooth random colour fields, in two groups (packages) of ``count // 2``."""
    out = []
    for i in range(count):
        rng = np.random.default_rng(100 + i)
        coarse = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
        rgb = np.asarray(np.kron(coarse, np.ones((40, 40, 1), dtype=np.uint8)))
        out.append(prepare_background(rgb, 100 + i, f"field-{i}", f"group-{i % 2}", size))
    return out


@pytest.fixture(scope="package")
def stamps() -> list[Stamp]:
    return synthetic_stamps()


@pytest.fixture(scope="package")
def backgrounds() -> list[Background]:
    return synthetic_backgrounds()
