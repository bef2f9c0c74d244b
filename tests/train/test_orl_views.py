"""ORL sampling on a hand-built store whose pixels tell where each patch came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from orl.augment import AugmentConfig
from orl.config import ConfigError, load_config
from orl.data.crops import crop_and_warp
from orl.data.encoded import render_views
from orl.data.sources import resolve_sources
from orl.data.views import collate
from orl.discover.store import CorrespondenceStore, StoreMismatch, write_store
from orl.train.config import PretrainConfig
from orl.train.orl import (
    EncodedORLDataset,
    JitterConfig,
    ORLChoices,
    ORLDataset,
    build_orl_dataset,
)

QUADRANTS = np.array([[0, 0, 32, 32], [32, 0, 32, 32], [0, 32, 32, 32], [32, 32, 32, 32]])
NO_PHOTOMETRIC = AugmentConfig(
    image_size=32,
    patch_size=16,
    flip_p=0,
    jitter_p=0,
    grayscale_p=0,
    view1_blur_p=0,
    view2_blur_p=0,
    view2_solarize_p=0,
)


def quadrant_images(folder: Path, n: int) -> Path:
    """Image i: 64x64, red = 15 i, green = 60 q in quadrant q (raster order), blue = 0."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.zeros((64, 64, 3), np.uint8)
        arr[..., 0] = (15 * i) % 251
        for q, (x, y, w, h) in enumerate(QUADRANTS):
            arr[y : y + h, x : x + w, 1] = 60 * q
        Image.fromarray(arr).save(folder / f"q{i:02d}.png")
    return folder


def quadrant_store(folder: Path, store: Path, k: int = 2) -> Path:
    """Boxes = the four quadrants; neighbours i+1..i+k; pair j of (i, j-th neighbour) = (j, 3-j)."""
    images = resolve_sources([folder])
    n = len(images)
    neighbours = np.array([[(i + 1 + j) % n for j in range(k)] for i in range(n)])
    pairs = [[np.array([[j, 3 - j]]) for j in range(k)] for _ in range(n)]
    write_store(store, [QUADRANTS] * n, neighbours, pairs, {"fingerprint": images.fingerprint})
    return store


def test_patches_come_from_the_right_images_and_boxes(tmp_path: Path) -> None:
    folder = quadrant_images(tmp_path / "img", 6)
    store = CorrespondenceStore.open(quadrant_store(folder, tmp_path / "corr"))
    images = resolve_sources([folder])
    branches = ("image", "intra", "inter")
    ds = ORLDataset(images, ORLChoices(store, JitterConfig(), branches), NO_PHOTOMETRIC, seed=0)
    seen_neighbours, jittered = set(), 0
    for epoch in range(40):
        s = ds[(epoch, 2)]
        assert s.views["image"][0].shape == (3, 32, 32)
        p, p_prime = s.views["intra"]
        a, b = s.views["inter"]
        assert p.shape == p_prime.shape == a.shape == b.shape == (3, 16, 16)
        # intra patch 1 is a whole quadrant of image 2, unjittered: one flat colour
        assert p[0].unique().tolist() == [30] and p[2].unique().tolist() == [0]
        assert p[1].unique().numel() == 1 and p[1, 0, 0].item() % 60 == 0
        jittered += int(not torch.equal(p, p_prime))
        assert (p_prime[0] == 30).all()  # the jittered box stays in image 2
        # inter pair: box j from image 2, box 3 - j from its j-th neighbour 3 + j
        j = int(a[1, 8, 8].item()) // 60
        assert a[0, 8, 8].item() == 30 and j in (0, 1)
        assert b[0, 8, 8].item() == 15 * (3 + j) and b[1, 8, 8].item() == 60 * (3 - j)
        seen_neighbours.add(j)
    assert seen_neighbours == {0, 1}  # both neighbours drawn
    assert jittered > 15  # a jittered box inside one quadrant still gives a flat patch


def test_same_key_same_views_and_branches_follow_the_weights(tmp_path: Path) -> None:
    folder = quadrant_images(tmp_path / "img", 4)
    store = CorrespondenceStore.open(quadrant_store(folder, tmp_path / "corr"))
    images = resolve_sources([folder])
    ds = ORLDataset(
        images,
        ORLChoices(store, JitterConfig(), ("image", "inter")),
        AugmentConfig(image_size=32, patch_size=16),
        seed=3,
    )
    a, b = ds[(1, 0)], ds[(1, 0)]
    assert set(a.views) == {"image", "inter"}
    for branch in a.views:
        for x, y in zip(a.views[branch], b.views[branch], strict=True):
            assert torch.equal(x, y)


PHOTOMETRIC_P = ("flip_p", "jitter_p", "grayscale_p", "view1_blur_p", "view2_blur_p")
PIXELS_OFF = [f"augment.{p}=0" for p in (*PHOTOMETRIC_P, "view2_solarize_p")]


@pytest.mark.parametrize(
    ("settings", "levels"),
    [
        ([], 3.0),  # the kernels differ by a few levels (docs/design.md)
        (["orl.image_weight=0", *PIXELS_OFF], 1.0),  # crops and resizes alone: the same patches
    ],
)
def test_gpu_backend_views_equal_the_pil_backend_sample_by_sample(
    tmp_path: Path, settings: list[str], levels: float
) -> None:
    """Both backends draw the same neighbour, boxes, jitter and pair from a sample's seed
    (`ORLChoices.draw`), also without the image-level branch."""
    folder = quadrant_images(tmp_path / "q", 8)
    corr = quadrant_store(folder, tmp_path / "corr")
    base = {
        "data": [str(folder)],
        "epochs": 1,
        "arch": "resnet18",
        "method": "orl",
        "batch_size": 4,
    }
    settings = [f"orl.corr={corr}", "augment.image_size=32", "augment.patch_size=16", *settings]
    pil_cfg = load_config(PretrainConfig, None, settings, base=base)
    gpu_cfg = load_config(PretrainConfig, None, [*settings, "augment.backend=gpu"], base=base)
    images = resolve_sources([folder])
    pil, gpu = build_orl_dataset(pil_cfg, images), build_orl_dataset(gpu_cfg, images)
    assert isinstance(pil, ORLDataset) and isinstance(gpu, EncodedORLDataset)
    keys = [(0, i) for i in range(8)]
    ref = collate([pil[k] for k in keys])
    got = render_views(collate([gpu[k] for k in keys]), torch.device("cpu"), gpu_cfg.augment)
    branches = (
        {"intra", "inter"} if "orl.image_weight=0" in settings else {"image", "intra", "inter"}
    )
    assert got.keys() == ref.views.keys() == branches
    for branch, views in got.items():
        for v, x in enumerate(views):
            diff = (x.float() - ref.views[branch][v].float()).abs().mean(dim=(1, 2, 3))
            assert diff.max() < levels, (branch, v)


def test_store_of_another_data_set_is_refused(tmp_path: Path) -> None:
    corr = quadrant_store(quadrant_images(tmp_path / "a", 4), tmp_path / "corr")
    other = quadrant_images(tmp_path / "b", 5)
    base = {"data": [str(other)], "epochs": 1, "arch": "resnet18", "method": "orl", "batch_size": 2}
    with_store = load_config(PretrainConfig, None, [f"orl.corr={corr}"], base=base)
    with pytest.raises(StoreMismatch, match="rerun `orl discover`"):
        build_orl_dataset(with_store, resolve_sources([other]))
    without_store = load_config(PretrainConfig, None, [], base=base)
    with pytest.raises(ConfigError, match="--corr"):
        build_orl_dataset(without_store, resolve_sources([other]))


def test_crop_and_warp_scales_boxes_onto_a_smaller_decode() -> None:
    arr = np.zeros((50, 100, 3), np.uint8)
    arr[:, 50:] = 255
    small = Image.fromarray(arr)
    # box given in a 200 x 100 frame: right half of the original
    patch = np.asarray(crop_and_warp(small, (100.0, 0.0, 100.0, 100.0), (200, 100), 8))
    assert patch.min() == 255
