"""Stage 2 end to end on tiny photos: invariants of the store, odd images, box sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from discover_helpers import tiny_config

from orl.data.sources import resolve_sources
from orl.discover.pairs import top_pairs
from orl.discover.pipeline import DiscoverError, discover
from orl.discover.store import CorrespondenceStore


def test_every_image_has_boxes_and_pairs_and_odd_images_are_counted(baseline: Path) -> None:
    st = CorrespondenceStore.open(baseline)
    names = [Path(p).name for p in st.meta["sources"]]
    assert names and st.num_images == 9 and st.k == 3
    for i in range(st.num_images):
        assert len(st.boxes(i)) >= 1
        nb = st.neighbours(i)
        assert i not in nb.tolist() and len(set(nb.tolist())) == 3
        assert 8 not in nb.tolist()  # the corrupt file is never a neighbour
        for j in range(st.k):
            pairs = st.pairs(i, j)
            assert len(pairs) == max(1, int(0.1 * len(st.boxes(i))))
    assert st.is_skipped(8) and st.meta["skipped_images"] == ["s8_corrupt.jpg"]
    assert st.boxes(7).tolist() == [[0, 0, 20, 14]]  # tiny: no proposal, whole-image box
    counts = st.meta["counts"]
    assert counts["skipped"] == 1 and counts["fallback"] >= 1
    assert st.neighbours(0)[0] == 5 and st.neighbours(5)[0] == 0  # the exact duplicate
    assert len(st.boxes(6)) > 1  # grayscale image gets proposals like any other
    assert counts["roi_forwards_authors"] > 3 * counts["roi_forwards_ours"]


def test_pairs_equal_brute_force_on_the_stored_features(baseline: Path) -> None:
    st = CorrespondenceStore.open(baseline)
    roi_dir = next((baseline / "work").glob("roi-*"))
    feats = np.concatenate([np.load(f) for f in sorted(roi_dir.glob("*.feats.npy"))])
    off = st.array("box_offsets")
    for q in range(st.num_images):
        for j, nb in enumerate(st.neighbours(q).tolist()):
            idx, _ = top_pairs(feats[off[q] : off[q + 1]], feats[off[nb] : off[nb + 1]], 0.1)
            np.testing.assert_array_equal(st.pair_index(q, j), idx)


def test_boxes_are_filtered_in_original_pixels(baseline: Path) -> None:
    st = CorrespondenceStore.open(baseline)
    for i in range(7):
        b = st.boxes(i)
        if len(b) > 1:
            assert b[:, 2].min() >= 16 and b[:, 3].min() >= 16
            assert (b[:, 0] + b[:, 2]).max() <= 120 and (b[:, 1] + b[:, 3]).max() <= 90


def test_existing_output_needs_resume(baseline: Path, checkpoint: Path, photos: Path) -> None:
    with pytest.raises(DiscoverError, match="--resume"):
        discover(tiny_config(), checkpoint, [str(photos)], baseline, resume=False)


def test_too_few_images_for_k(tmp_path: Path, checkpoint: Path, photos: Path) -> None:
    with pytest.raises(DiscoverError, match="k=20"):
        discover(tiny_config(k=20), checkpoint, [str(photos)], tmp_path / "c", resume=False)


def test_coco_gt_boxes_and_roi_align_mode(tmp_path: Path, checkpoint: Path, photos: Path) -> None:
    names = ["s0.jpg", "s1.jpg", "s2.jpg", "s3.jpg", "s4.jpg"]
    anns = [
        {"id": 1, "image_id": 10, "bbox": [10.4, 20, 50, 40], "iscrowd": 0},
        {"id": 2, "image_id": 10, "bbox": [0, 0, 30, 30], "iscrowd": 0},
        {"id": 3, "image_id": 11, "bbox": [5, 5, 60, 60], "iscrowd": 1},
        {"id": 4, "image_id": 12, "bbox": [1, 2, 40, 50], "iscrowd": 0},
    ]
    images = [{"id": 10 + i, "file_name": n} for i, n in enumerate(names)]
    ann_file = tmp_path / "instances_x.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns}))
    spec = f"{ann_file}:{photos}"
    cfg = tiny_config(boxes="coco-gt", roi_mode="roi-align", roi_align_side=96)
    out = discover(cfg, checkpoint, [spec], tmp_path / "c", resume=False)
    st = CorrespondenceStore.open(out, resolve_sources([spec]).fingerprint)
    assert st.boxes(0).tolist() == [[10, 20, 50, 40], [0, 0, 30, 30]]
    assert st.boxes(1).tolist() == [[0, 0, 120, 90]]  # only a crowd box: whole image
    assert st.boxes(2).tolist() == [[1, 2, 40, 50]]
    assert st.meta["counts"]["roi_forwards_ours"] == 5  # one backbone pass per image
    assert not (tmp_path / "c" / "cache").exists()  # no selective search ran
