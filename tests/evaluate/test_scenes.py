"""`orl eval scenes` on a tiny synthetic scene set whose categories are colours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from tests.checkpoints import save_tiny_checkpoint

from orl.cli import main
from orl.evaluate.scene_data import read_scene_split
from orl.evaluate.scene_features import color_histogram, square_crop, to_grayscale
from orl.evaluate.scene_instances import instance_retrieval
from orl.evaluate.scenes import (
    crop_classifier,
    evaluate_scenes,
    extract_split,
    random_backbone,
    scene_svm,
)

# Channel values at the centres of the 6 histogram bins (21, 192, 235), shaded by at most +-10, so
# every object of a category falls into one histogram bin.
COLOURS = {
    "red": (235, 21, 21),
    "green": (21, 192, 21),
    "blue": (21, 21, 235),
    "yellow": (235, 235, 21),
}
SIZE = 48
QUICK_COSTS = (0.1, 1.0, 10.0)


def write_scene_split(
    root: Path, split: str, n: int, seed: int, shuffle_seed: int | None = None
) -> None:
    """`n` scenes of noise with 1-2 squares of distinct category colours, the generator's layout.

    One object sits in the left half, an optional second in the right half, so nothing overlaps
    and the visible box is the whole square. With `shuffle_seed` every scene's annotations move to
    another scene (a control: labels and boxes no longer describe the pixels).
    """
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    (root / split).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        pixels = rng.integers(60, 190, size=(SIZE, SIZE, 3)).astype(np.uint8)
        cats = rng.choice(len(names), size=1 + int(rng.random() < 0.5), replace=False)
        for slot, c in enumerate(cats.tolist()):
            side = int(rng.integers(12, 20))
            x = int(rng.integers(0, SIZE // 2 - side)) + slot * SIZE // 2
            y = int(rng.integers(0, SIZE - side))
            shade = rng.integers(-10, 11, size=3)
            pixels[y : y + side, x : x + side] = np.clip(np.add(COLOURS[names[c]], shade), 0, 255)
            mask = np.zeros((SIZE, SIZE), dtype=np.uint8, order="F")
            mask[y : y + side, x : x + side] = 1
            rle = mask_utils.encode(mask)
            rle["counts"] = rle["counts"].decode("ascii")
            box = [float(x), float(y), float(side), float(side)]
            anns.append(
                {"id": len(anns) + 1, "image_id": i + 1, "category_id": c + 1, "bbox": box,
                 "full_bbox": box, "area": side * side, "visible_fraction": 1.0,
                 "instance_id": 10 * c + i % 2, "iscrowd": 0, "segmentation": rle}
            )  # fmt: skip
        Image.fromarray(pixels).save(root / split / f"{i:06d}.png")
        images.append({"id": i + 1, "file_name": f"{i:06d}.png", "width": SIZE, "height": SIZE,
                       "background": "noise"})  # fmt: skip
    if shuffle_seed is not None:
        moved = np.random.default_rng(shuffle_seed).permutation(n) + 1
        for a in anns:
            a["image_id"] = int(moved[a["image_id"] - 1])
    categories = [{"id": c + 1, "name": name} for c, name in enumerate(names)]
    (root / "annotations").mkdir(exist_ok=True)
    doc = {"images": images, "annotations": anns, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


def write_scenes(root: Path, shuffle_seed: int | None = None) -> Path:
    """40 train and 24 test scenes; `shuffle_seed` shuffles the training annotations only."""
    write_scene_split(root, "train", 40, seed=1, shuffle_seed=shuffle_seed)
    write_scene_split(root, "test", 24, seed=2)
    (root / "meta.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("scenes"))


def test_square_crop_is_centred_and_shifted_inside_the_image() -> None:
    assert square_crop(np.array([10.0, 20.0, 8.0, 4.0]), 48, 48) == (10, 18, 8)
    assert square_crop(np.array([0.0, 0.0, 6.0, 10.0]), 48, 48) == (0, 0, 10)  # shifted, not cut
    assert square_crop(np.array([40.0, 0.0, 8.0, 60.0]), 48, 40) == (8, 0, 40)  # capped side


def test_color_histogram_rows_sum_to_one_and_find_the_colour() -> None:
    x = np.zeros((2, 3, 4, 4), dtype=np.float32)
    x[0, 0] = 1.0  # pure red
    hist = color_histogram(torch.from_numpy(x)).numpy()
    assert hist.shape == (2, 216) and np.allclose(hist.sum(axis=1), 1.0)
    assert hist[0, 5 * 36] == 1.0 and hist[1, 0] == 1.0


def colour_histogram_scores(root: Path) -> dict[str, Any]:
    """Both measures on the colour histogram alone (the building blocks of evaluate_scenes)."""
    train, test = (
        extract_split(read_scene_split(root, s), {"color_hist": color_histogram}, None, 32, 64)
        for s in ("train", "test")
    )
    scene = scene_svm(
        train.scenes["color_hist"], train.split.image_labels(), test.scenes["color_hist"],
        test.split.image_labels(), QUICK_COSTS,
    )  # fmt: skip
    crop = crop_classifier(
        train.crops["color_hist"], train.split.obj_category, test.crops["color_hist"],
        test.split.obj_category, costs=(0.01, 1.0),
    )  # fmt: skip
    return {**scene, **crop}


def test_colour_histogram_separates_colour_categories(scenes: Path) -> None:
    report = evaluate_scenes(scenes, None, baselines=True, costs=QUICK_COSTS)
    hist = report["baselines"]["color_hist"]
    assert hist["scene_map"] > 0.9 and hist["crop_top1"] > 0.9
    assert hist["crop_mean_class_acc"] > 0.9
    assert set(hist["scene_ap"]) == set(COLOURS)
    assert "scene_map" not in report  # no backbone given


def test_shuffled_training_annotations_do_not_separate_them(tmp_path: Path) -> None:
    # The control's crop accuracy is coarse (test crops are clean colours, so any classifier is a
    # colour -> category map, right for whole categories or none): average three shuffles.
    controls = [
        colour_histogram_scores(write_scenes(tmp_path / str(k), shuffle_seed=k)) for k in range(3)
    ]
    assert np.mean([c["scene_map"] for c in controls]) < 0.65
    assert np.mean([c["crop_top1"] for c in controls]) < 0.5


def test_random_init_features_give_a_finite_map(scenes: Path) -> None:
    report = evaluate_scenes(scenes, random_backbone("resnet18", seed=0), costs=QUICK_COSTS)
    assert 0.0 <= report["scene_map"] <= 1.0 and np.isfinite(report["scene_map"])
    assert 0.0 <= report["crop_top1"] <= 1.0
    assert report["n_train"] == 40 and report["n_test"] == 24
    assert "baselines" not in report


def test_cli_writes_the_report_with_every_key(
    scenes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "tiny.pt"
    save_tiny_checkpoint(ckpt)
    out = tmp_path / "scenes.json"
    argv = ["eval", "scenes", "--checkpoint", str(ckpt), "--scenes", str(scenes), "--out",
            str(out), "--baselines", "--image-size", "32", "--crop-size", "32",
            "--costs", "0.1,1", "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    keys = {"scene_map", "scene_ap", "crop_top1", "crop_mean_class_acc", "n_train", "n_test"}
    assert keys | {"checkpoint", "baselines"} <= set(report)
    assert report["checkpoint"].startswith("orl:")
    assert set(report["baselines"]) == {"color_hist", "raw_pixels"}
    assert all(keys - {"n_train", "n_test"} <= set(b) for b in report["baselines"].values())
    assert "color_hist" in capsys.readouterr().out


def test_cli_random_checkpoint_and_a_missing_folder(
    scenes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    argv = ["eval", "scenes", "--checkpoint", "random", "--arch", "resnet18", "--seed", "3",
            "--scenes", str(scenes), "--out", str(out), "--costs", "1", "--jobs", "1"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(out.read_text())["checkpoint"] == "random:resnet18:seed3"
    capsys.readouterr()
    assert main(["eval", "scenes", "--checkpoint", "random", "--scenes", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "instances_train.json" in err and len(err.splitlines()) == 1


def test_instance_retrieval_on_a_hand_built_case() -> None:
    gallery = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    ids = np.array([7, 8, 8, 9])
    # Query 1 (instance 8) ranks the gallery 0, 1, 3, 2: a miss first, its positives 2nd and 4th
    # -> AP = (1/2 + 2/4) / 2. Query 2 (instance 9) ranks gallery 3 first -> a hit, AP 1.
    # Query 3 (instance 5) has no gallery crop and is skipped.
    queries = np.array([[1.0, 0.05], [0.12, 1.0], [1.0, 1.0]], dtype=np.float32)
    out = instance_retrieval(gallery, ids, queries, np.array([8, 9, 5]))
    assert out["instance_queries"] == 2
    assert out["instance_r1"] == pytest.approx(0.5)
    assert out["instance_map"] == pytest.approx(((1 / 2 + 2 / 4) / 2 + 1.0) / 2)


def test_grayscale_is_the_luma_of_pil() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    gray = to_grayscale(x)
    assert gray.shape == x.shape and torch.equal(gray[:, 0], gray[:, 2])
    expected = np.asarray(Image.fromarray(pixels).convert("L"), dtype=np.float32) / 255
    assert np.abs(gray[0, 0].numpy() - expected).max() <= 1 / 255 + 1e-6


def test_a_test_seen_split_adds_the_instance_protocol_and_gray_rows(tmp_path: Path) -> None:
    # test_seen: new scenes of the train instances (ids 10 c + i % 2, as in the train split)
    root = write_scenes(tmp_path / "scenes")
    write_scene_split(root, "test_seen", 16, seed=3)
    report = evaluate_scenes(root, None, baselines=True, costs=QUICK_COSTS, gray=True)
    assert report["n_test_seen_crops"] > 0
    hist, hist_gray = report["baselines"]["color_hist"], report["baselines"]["color_hist_gray"]
    # Colour alone finds the category, so half of the nearest crops are the same instance; on
    # gray images the four colours collapse to three luma levels' worth of bins and it drops.
    assert hist["instance_r1"] > 0.35 and hist["crop_top1"] > 0.9
    assert hist_gray["crop_top1"] < hist["crop_top1"]
    assert {"instance_map", "instance_top1", "instance_queries"} <= set(hist)
