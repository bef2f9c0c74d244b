"""The Figure-3 style pair gallery (`orl viz pairs`): right images, boxes drawn where the store
says, in the original frame whatever size the picture is decoded at."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import IO

import numpy as np
import pytest
from PIL import Image

from orl.cli import main
from orl.data.sources import resolve_sources
from orl.discover.store import FLAG_SKIPPED, CorrespondenceStore, write_store
from orl.viz.pairs import COLOURS, GAP, best_pairs, near_duplicates


def _store(photos: Path, corr: Path, boxes: list[np.ndarray]) -> None:
    images = resolve_sources([photos])
    write_store(
        corr,
        boxes,
        np.array([[1], [0], [0]]),
        [[np.zeros((1, 2))] for _ in range(3)],
        {"fingerprint": images.fingerprint},
        pair_sims=[[np.array([0.75])] for _ in range(3)],
        flags=np.array([0, 0, FLAG_SKIPPED]),
    )


def _draw(photos: Path, corr: Path, out: Path) -> np.ndarray:
    argv = ["viz", "pairs", str(corr), "--data", str(photos), "--out", str(out)]
    assert main([*argv, "--count", "5", "--columns", "1", "--height", "80"]) == 0
    with Image.open(out) as img:
        return np.asarray(img.convert("RGB"))


def test_gallery_draws_pair_boxes_and_skips_undecodable(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (80, 80), (255, 255, 255)).save(photos / f"p{i}.png")
    boxes = [np.array([[10, 10, 40, 40]]), np.array([[0, 0, 20, 20]]), np.array([[0, 0, 80, 80]])]
    _store(photos, tmp_path / "corr", boxes)
    px = _draw(photos, tmp_path / "corr", tmp_path / "pairs.png")
    # one cell: image pair (0, 1) once, the skipped query 2 left out
    assert px.shape[0] < 2 * 80
    assert tuple(px[10, 25]) == COLOURS[0]  # query box top edge at y=10 on a white image
    assert tuple(px[40, 80 + GAP + 10]) == (255, 255, 255)  # below the neighbour box (ends y=20)
    assert tuple(px[20, 80 + GAP + 10]) == COLOURS[1]


def test_boxes_are_rescaled_from_the_original_frame(tmp_path: Path) -> None:
    """A 960 px JPEG is decoded at reduced size for an 80 px thumbnail; the box, given in
    original pixels, still lands at a tenth of its coordinates."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (800, 800), (255, 255, 255)).save(photos / f"p{i}.jpg", quality=95)
    boxes = [
        np.array([[100, 100, 400, 400]]),
        np.array([[0, 0, 200, 200]]),
        np.array([[0, 0, 9, 9]]),
    ]
    _store(photos, tmp_path / "corr", boxes)
    px = _draw(photos, tmp_path / "corr", tmp_path / "pairs.png").astype(int)
    assert np.abs(px[10, 25] - COLOURS[0]).max() <= 2  # top edge at y = 100 / 10
    assert np.abs(px[30, 49] - COLOURS[0]).max() <= 2  # right edge at x = 500 / 10
    assert px[30, 70].min() >= 250  # outside the box: white


def test_pairs_of_distinct_photos_come_before_near_duplicates(tmp_path: Path) -> None:
    """Images 0 and 1 are one photo (a copy): their pair has the best similarity but is drawn
    after the pair of distinct photos 2 and 3."""
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    same = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for i, pixels in enumerate(
        [same, same, *(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2))]
    ):
        Image.fromarray(pixels).save(photos / f"p{i}.png")
    images = resolve_sources([photos])
    write_store(
        tmp_path / "corr",
        [np.array([[0, 0, 32, 32]])] * 4,
        np.array([[1], [0], [3], [2]]),
        [[np.zeros((1, 2))] for _ in range(4)],
        {"fingerprint": images.fingerprint},
        pair_sims=[[np.array([s])] for s in (0.99, 0.98, 0.50, 0.40)],
    )
    store = CorrespondenceStore.open(tmp_path / "corr", images.fingerprint)
    paths = [images.path(i) for i in range(4)]
    plain = [(p.query, p.neighbour) for p in best_pairs(store, 2)]
    assert plain == [(0, 1), (2, 3)]  # by similarity alone the copies come first
    distinct_first = best_pairs(store, 2, near_duplicates(paths))
    assert [(p.query, p.neighbour) for p in distinct_first] == [(2, 3), (0, 1)]
    assert [(p.query, p.neighbour) for p in best_pairs(store, 1, near_duplicates(paths))] == [
        (2, 3)
    ]
    is_dup = near_duplicates(paths)
    assert is_dup(0, 1) and not is_dup(2, 3) and not is_dup(0, 2)


def test_a_failed_write_leaves_the_previous_gallery_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills up while the PNG is written: the gallery drawn before stays intact."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (80, 80), (255, 255, 255)).save(photos / f"p{i}.png")
    boxes = [np.array([[10, 10, 40, 40]]), np.array([[0, 0, 20, 20]]), np.array([[0, 0, 8, 8]])]
    _store(photos, tmp_path / "corr", boxes)
    out = tmp_path / "pairs.png"
    _draw(photos, tmp_path / "corr", out)
    before = out.read_bytes()
    real_save = Image.Image.save

    def half_then_fail(self: Image.Image, fp: str | Path | IO[bytes], **kwargs: object) -> None:
        buffer = io.BytesIO()
        real_save(self, buffer, format="PNG")
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(fp, str | Path):
            Path(fp).write_bytes(half)
        else:
            fp.write(half)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        _draw(photos, tmp_path / "corr", out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corr", "pairs.png", "photos"]
