"""Tiny on-disk data sets for the evaluation tests: a VOC2007 tree and an ImageFolder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orl.evaluate.voc07 import VOC_CLASSES


def _xml(objects: list[tuple[str, bool]]) -> str:
    body = "".join(
        f"<object><name>{n}</name><difficult>{int(d)}</difficult>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
        for n, d in objects
    )
    return f"<annotation><size><width>32</width><height>24</height></size>{body}</annotation>"


def write_voc(root: Path, n_trainval: int = 60, n_test: int = 40) -> Path:
    """VOCdevkit/VOC2007 with real XML and JPEGs; every class has >= 3 positives per split.

    Image i holds class i % 20; every third image also class (7 i + 3) % 20; every fifth image a
    difficult instance of class (i + 10) % 20 (a difficult-only label unless also present).
    """
    voc = root / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids: dict[str, list[str]] = {"trainval": [], "test": []}
    for i in range(n_trainval + n_test):
        split = "trainval" if i < n_trainval else "test"
        image_id = f"{i:06d}"
        objects = [(VOC_CLASSES[i % 20], False)]
        if i % 3 == 0:
            objects.append((VOC_CLASSES[(7 * i + 3) % 20], False))
        if i % 5 == 0:
            objects.append((VOC_CLASSES[(i + 10) % 20], True))
        (voc / "Annotations" / f"{image_id}.xml").write_text(_xml(objects))
        pixels = rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=90)
        ids[split].append(image_id)
    for split, names in ids.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return voc


@pytest.fixture(scope="session")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_voc(tmp_path_factory.mktemp("voc"))


def write_image_folder(root: Path, per_class: int = 4) -> Path:
    """Two classes of near-solid images (red, blue): separable by any backbone."""
    rng = np.random.default_rng(1)
    for name, colour in (("blue", (20, 40, 220)), ("red", (220, 30, 20))):
        (root / name).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            noise = rng.integers(-15, 15, size=(40, 48, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{j}.JPEG")
    return root


@pytest.fixture(scope="session")
def image_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("folders")
    return write_image_folder(base / "train"), write_image_folder(base / "val", per_class=3)
