"""The Figure-3 style pair gallery: right images, boxes drawn where the store says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from orl.data.sources import resolve_sources
from orl.discover.store import FLAG_SKIPPED, CorrespondenceStore, write_store
from orl.viz.pairs import COLOURS, draw_pairs, pick_queries


def test_gallery_draws_pair_boxes_and_skips_undecodable(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (80, 80), (255, 255, 255)).save(photos / f"p{i}.png")
    images = resolve_sources([photos])
    boxes = [np.array([[10, 10, 40, 40]]), np.array([[0, 0, 20, 20]]), np.array([[0, 0, 80, 80]])]
    write_store(
        tmp_path / "corr",
        boxes,
        np.array([[1], [0], [0]]),
        [[np.zeros((1, 2))] for _ in range(3)],
        {"fingerprint": images.fingerprint},
        pair_sims=[[np.array([0.75])] for _ in range(3)],
        flags=np.array([0, 0, FLAG_SKIPPED]),
    )
    store = CorrespondenceStore.open(tmp_path / "corr", images.fingerprint)
    assert pick_queries(store, 5) == [0, 1]
    out = draw_pairs(store, images, tmp_path / "pairs.png", count=1, columns=1, height=80)
    with Image.open(out) as img:
        px = np.asarray(img.convert("RGB"))
    assert tuple(px[10, 25]) == COLOURS[0]  # query box top edge at y=10 on a white image
    assert tuple(px[40, 80 + 6 + 10]) == (255, 255, 255)  # below the neighbour box (ends y=20)
    assert tuple(px[20, 80 + 6 + 10]) == COLOURS[1]
