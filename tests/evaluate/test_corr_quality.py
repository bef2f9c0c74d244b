"""`orl eval corr`: a hand-built store over four annotated scenes, scores computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orl.cli import main
from orl.data.sources import resolve_sources
from orl.discover.store import FLAG_SKIPPED, write_store
from orl.evaluate.corr_quality import random_boxes_like, score_correspondences
from orl.evaluate.inputs import EvalInputError
from orl.evaluate.scene_data import read_scene_split

# Four 100x100 scenes; objects (image, category, visible xywh, instance_id):
#   A image 0 cat [0, 0, 40, 40] 1    B image 0 dog [50, 50, 40, 40] 2
#   C image 1 cat [10, 10, 40, 40] 1  D image 2 dog [0, 0, 50, 50] 3
#   E image 3 cat [60, 0, 30, 30] 4
OBJECTS = [
    (3, 1, [60, 0, 30, 30], 4),  # E (annotations out of image order on purpose)
    (0, 1, [0, 0, 40, 40], 1),  # A
    (0, 2, [50, 50, 40, 40], 2),  # B
    (1, 1, [10, 10, 40, 40], 1),  # C
    (2, 2, [0, 0, 50, 50], 3),  # D
]
# Kept boxes and what they cover (IoU >= 0.5):
BOXES = [
    np.array([[0, 0, 40, 40], [50, 50, 40, 40], [0, 50, 20, 20]]),  # A, B, nothing
    np.array([[10, 10, 40, 40], [10, 10, 40, 20]]),  # C, C (IoU exactly 0.5)
    np.array([[25, 25, 50, 50], [60, 0, 30, 30]]),  # nothing (IoU 0.14 with D), nothing
    np.array([[60, 0, 30, 30], [0, 0, 50, 50]]),  # E, nothing
]
NEIGHBOURS = np.array([[1], [0], [3], [0]])
# Pairs per (query, neighbour): (0,1) A-C same instance, none-C; (1,0) C-B; (2,3) none-E;
# (3,0) E-A same category, other instance.
PAIRS = [
    [np.array([[0, 0], [2, 1]])],
    [np.array([[1, 1]])],
    [np.array([[0, 0]])],
    [np.array([[0, 0]])],
]


def write_split(
    root: Path, split: str, n: int, objects: list[tuple[int, int, list[int], int]]
) -> None:
    (root / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (100, 100), (i * 40, 90, 90)).save(root / split / f"{i:06d}.png")
    doc = {
        "images": [{"id": 11 + i, "file_name": f"{i:06d}.png", "width": 100, "height": 100,
                    "background": "flat"} for i in range(n)],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [{"id": k + 1, "image_id": 11 + img, "category_id": cat,
                         "bbox": [float(v) for v in box], "instance_id": inst, "iscrowd": 0}
                        for k, (img, cat, box, inst) in enumerate(objects)],
    }  # fmt: skip
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    write_split(root, "train", 4, OBJECTS)
    write_split(root, "test", 3, [(0, 1, [0, 0, 10, 10], 9)])
    return root


def build_store(scenes: Path, out: Path, flags: np.ndarray | None = None) -> Path:
    images = resolve_sources([str(scenes / "annotations" / "instances_train.json")])
    write_store(out, BOXES, NEIGHBOURS, PAIRS, {"fingerprint": images.fingerprint}, flags=flags)
    return out


def test_hand_computed_scores(scenes: Path, tmp_path: Path) -> None:
    r = score_correspondences(build_store(scenes, tmp_path / "corr"), scenes)
    assert (r["n_images"], r["k"], r["n_boxes"], r["n_objects"], r["n_pairs"]) == (4, 1, 9, 5, 5)
    assert r["rois_on_object"] == pytest.approx(5 / 9)
    assert r["objects_recalled"] == pytest.approx(4 / 5)  # D is missed
    assert r["pairs_both_objects"] == pytest.approx(3 / 5)
    assert r["pairs_same_category"] == pytest.approx(2 / 5)
    assert r["pairs_same_instance"] == pytest.approx(1 / 5)
    # Uniform kept boxes: per image the share of boxes on objects (2/3, 1, 0, 1/2), on cats
    # (1/3, 1, 0, 1/2), dogs (1/3, 0, 0, 0), instance cat-1 (1/3, 1, 0, 0), cat-4 (0, 0, 0, 1/2);
    # rows (0,1) x2 pairs, (1,0), (2,3), (3,0).
    assert r["random_kept_pairs_both_objects"] == pytest.approx((2 * 2 / 3 + 2 / 3 + 0 + 1 / 3) / 5)
    assert r["random_kept_pairs_same_category"] == pytest.approx((2 / 3 + 1 / 3 + 0 + 1 / 6) / 5)
    assert r["random_kept_pairs_same_instance"] == pytest.approx((2 / 3 + 1 / 3 + 0 + 0) / 5)
    # kNN: 0->1 cat, 1->0 cat, 2->3 no, 3->0 cat; random: (3/3 + 2/3 + 1/3 + 2/3) / 4.
    assert r["knn_same_category"] == pytest.approx(3 / 4)
    assert r["random_images_same_category"] == pytest.approx(2 / 3)
    for name in ("both_objects", "same_category", "same_instance"):
        assert 0.0 <= r[f"random_boxes_pairs_{name}"] <= 1.0
    again = score_correspondences(tmp_path / "corr", scenes, seed=0)
    assert again == r  # the random-box reference is seeded


def test_skipped_images_are_left_out(scenes: Path, tmp_path: Path) -> None:
    flags = np.array([0, 0, FLAG_SKIPPED, 0], dtype=np.uint8)
    r = score_correspondences(build_store(scenes, tmp_path / "corr", flags), scenes)
    assert (r["n_boxes"], r["n_objects"], r["n_pairs"]) == (7, 4, 4)
    assert r["rois_on_object"] == pytest.approx(5 / 7) and r["objects_recalled"] == 1.0
    assert (r["pairs_both_objects"], r["pairs_same_category"]) == (0.75, 0.5)
    assert r["knn_same_category"] == 1.0 and r["random_images_same_category"] == 1.0


def test_random_boxes_keep_the_size_and_stay_inside(scenes: Path) -> None:
    truth = read_scene_split(scenes, "train")
    boxes = np.array([[5, 5, 100, 100], [0, 0, 30, 20], [0, 0, 300, 10]])
    placed = random_boxes_like(boxes, np.array([0, 1, 2]), truth, np.random.default_rng(0))
    assert placed[0].tolist() == [0.0, 0.0, 100.0, 100.0]  # a whole-image box cannot move
    assert placed[1, 2:].tolist() == [30.0, 20.0] and placed[2, 2:].tolist() == [100.0, 10.0]
    assert np.all(placed[:, :2] >= 0) and np.all(placed[:, :2] + placed[:, 2:] <= 100)


def test_a_store_of_another_split_is_refused_in_one_line(scenes: Path, tmp_path: Path) -> None:
    corr = build_store(scenes, tmp_path / "corr")
    with pytest.raises(EvalInputError, match="split 'test'"):
        score_correspondences(corr, scenes, split="test")


def test_cli_writes_the_scores_and_maps_errors_to_exit_2(
    scenes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corr, out = build_store(scenes, tmp_path / "corr"), tmp_path / "corr.json"
    argv = ["eval", "corr", "--corr", str(corr), "--scenes", str(scenes), "--out", str(out)]
    assert main(argv) == 0
    assert json.loads(out.read_text()) == score_correspondences(corr, scenes)
    assert "same_category" in capsys.readouterr().out
    assert main([*argv[:-2], "--split", "test"]) == 2
    err = capsys.readouterr().err.strip()
    assert "store was built on data set" in err and len(err.splitlines()) == 1
