"""The scene composer (docs/scenes.md, "How scenes are drawn") on synthetic stamps."""

from __future__ import annotations

import numpy as np
import pytest

from orl.data.scenes.compose import (
    AREA_FRACTION,
    MIN_VISIBLE,
    Background,
    Scene,
    Stamp,
    box_of,
    compose_scene,
    is_grayscale,
    prepare_background,
    prepare_stamp,
)
from tests.data.scenes.conftest import CATEGORIES, SIZE


def _pools(stamps: list[Stamp]) -> list[list[Stamp]]:
    return [[s for s in stamps if s.category == c] for c in range(len(CATEGORIES))]


def _scenes(stamps: list[Stamp], backgrounds: list[Background], n: int = 60) -> list[Scene]:
    pools = _pools(stamps)
    return [compose_scene(np.random.default_rng(i), pools, backgrounds, SIZE) for i in range(n)]


def test_same_generator_seed_gives_the_same_scene(
    stamps: list[Stamp], backgrounds: list[Background]
) -> None:
    pools = _pools(stamps)
    a, b, c = (compose_scene(np.random.default_rng(s), pools, backgrounds, SIZE) for s in (7, 7, 8))
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    assert all(np.array_equal(p.mask, q.mask) for p, q in zip(a.objects, b.objects, strict=True))


def test_scenes_hold_2_to_4_objects_of_distinct_categories(
    stamps: list[Stamp], backgrounds: list[Background]
) -> None:
    counts = set()
    for scene in _scenes(stamps, backgrounds):
        categories = [o.category for o in scene.objects]
        assert 2 <= len(categories) <= 4 and len(set(categories)) == len(categories)
        assert scene.image.shape == (SIZE, SIZE, 3) and scene.image.dtype == np.uint8
        counts.add(len(categories))
    assert counts == {2, 3, 4}


def test_visible_masks_are_disjoint_and_keep_60_percent(
    stamps: list[Stamp], backgrounds: list[Background]
) -> None:
    occluded = 0
    for scene in _scenes(stamps, backgrounds):
        owners = np.sum([o.mask for o in scene.objects], axis=0)
        assert owners.max() <= 1
        for obj in scene.objects:
            assert obj.visible_fraction >= MIN_VISIBLE
            assert obj.visible_fraction == obj.area / obj.pixels
            x, y, w, h = obj.visible_box
            fx, fy, fw, fh = obj.full_box
            assert fx <= x and fy <= y and x + w <= fx + fw and y + h <= fy + fh
            assert fx >= 0 and fy >= 0 and fx + fw <= SIZE and fy + fh <= SIZE
            occluded += obj.visible_fraction < 1
    assert occluded > 0  # occlusion does happen, within the limit


def test_objects_are_scaled_by_their_visible_area(
    stamps: list[Stamp], backgrounds: list[Background]
) -> None:
    # The thin bars (category 1) cover as much of the scene as the discs: scaling is by area.
    fractions = {c: [] for c in range(len(CATEGORIES))}  # type: dict[int, list[float]]
    for scene in _scenes(stamps, backgrounds):
        for obj in scene.objects:
            fractions[obj.category].append(obj.pixels / SIZE**2)
    low, high = AREA_FRACTION
    for category, values in fractions.items():
        assert 0.8 * low <= min(values) and max(values) <= 1.1 * high, category
    assert np.median(fractions[1]) > 0.5 * np.median(fractions[0])


def test_box_of_is_the_tight_box() -> None:
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:5, 3:9] = True
    mask[7, 4] = True
    assert box_of(mask) == (3, 2, 6, 6)


def test_prepare_stamp_crops_to_alpha_and_premultiplies() -> None:
    rgba = np.zeros((20, 30, 4), dtype=np.uint8)
    rgba[5:10, 10:25] = (200, 100, 50, 255)
    rgba[5, 10] = (200, 100, 50, 51)  # 20% opaque
    stamp = prepare_stamp(rgba, 3, 1)
    assert stamp.rgba.shape == (5, 15, 4) and (stamp.instance_id, stamp.category) == (3, 1)
    assert tuple(stamp.rgba[0, 0]) == (40, 20, 10, 51)
    assert stamp.area == pytest.approx(74 + 0.2)
    with pytest.raises(ValueError, match="transparent"):
        prepare_stamp(np.zeros((4, 4, 4), dtype=np.uint8), 0, 0)


def test_grayscale_backgrounds_are_recognised() -> None:
    rng = np.random.default_rng(0)
    gray = np.repeat(rng.integers(0, 256, (50, 60, 1), dtype=np.uint8), 3, axis=2)
    colour = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    assert is_grayscale(gray) and not is_grayscale(colour)


def test_prepare_background_cuts_black_bars_and_shrinks() -> None:
    rng = np.random.default_rng(0)
    rgb = np.zeros((300, 400, 3), dtype=np.uint8)
    rgb[20:280] = rng.integers(60, 256, (260, 400, 3), dtype=np.uint8)
    background = prepare_background(rgb, 5, "photo", "pkg", 64)
    # Shrunk to a shorter side of 2 x 64 (128 x 171), then the bars (8.5 rows each) are cut.
    assert background.rgb.shape[1] == 171 and 110 <= background.rgb.shape[0] <= 112
    assert background.rgb[0].mean() > 30 and background.rgb[-1].mean() > 30
