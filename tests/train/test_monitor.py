"""The online kNN monitor: its numbers are `orl eval knn`'s on the same checkpoint, it reads the
scene benchmark's COCO JSONs (multi-label: mAP), and it leaves training bit-identical."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from orl.cli import main
from orl.config import ConfigError, load_config
from orl.data.sources import resolve_sources
from orl.evaluate.features import center_crop_transform, extract_features, l2_normalize
from orl.evaluate.knn import knn_scores, mean_average_precision, top1_hit_rate
from orl.evaluate.monitor import interleave
from orl.models.pretrained import load_pretrained
from orl.train.config import PretrainConfig
from tests.evaluate.conftest import write_image_folder
from tests.test_cli_errors import error_lines

pytestmark = pytest.mark.slow


def metrics(run: Path) -> list[dict[str, float]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def monitor_lines(run: Path) -> list[dict[str, float]]:
    return [r for r in metrics(run) if "knn_top1" in r]


def write_scenes(root: Path, split: str, n: int, seed: int) -> Path:
    """`orl scenes`' layout in miniature: DIR/annotations/instances_<split>.json, DIR/<split>/,
    each image with one or two of three categories (a colour each)."""
    rng = np.random.default_rng(seed)
    colours = ((220, 30, 20), (20, 200, 40), (30, 40, 220))
    (root / split).mkdir(parents=True)
    images, annotations = [], []
    for i in range(n):
        cats = sorted({i % 3, (i * 7 + seed) % 3} if i % 2 else {i % 3})
        pixels = np.zeros((40, 48, 3), np.uint8)
        for k, c in enumerate(cats):
            pixels[:, k * 24 : (k + 1) * 24] = colours[c]
        noise = rng.integers(0, 20, pixels.shape, dtype=np.uint8)
        Image.fromarray(pixels + noise).save(root / split / f"{i:04d}.png")
        images.append({"id": 100 + i, "file_name": f"{i:04d}.png", "width": 48, "height": 40})
        annotations += [
            {"id": len(annotations) + j, "image_id": 100 + i, "category_id": c + 1, "bbox": [0] * 4}
            for j, c in enumerate(cats)
        ]
    categories = [{"id": c + 1, "name": name} for c, name in enumerate(("red", "green", "blue"))]
    path = root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(exist_ok=True)
    doc = {"images": images, "annotations": annotations, "categories": categories}
    path.write_text(json.dumps(doc))
    return path


def test_monitor_equals_orl_eval_knn_and_leaves_training_unchanged(
    tiny_config: Path, tmp_path: Path
) -> None:
    train = write_image_folder(tmp_path / "mon_train", per_class=5)
    val = write_image_folder(tmp_path / "mon_val", per_class=3)
    base = ["pretrain", "--config", str(tiny_config), "--set", "deterministic=true"]
    monitor = ["--set", f"monitor.train={train}", "--set", f"monitor.val={val}"]
    monitor += ["--set", "monitor.every_epochs=1"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, *monitor, "--out", str(tmp_path / "run")]) == 0

    lines = monitor_lines(tmp_path / "run")
    assert [r["step"] for r in lines] == [3, 6]  # every epoch of 3 steps
    assert all(r["knn_seconds"] > 0 and "loss" not in r for r in lines)
    report = tmp_path / "knn.json"
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    argv = ["eval", "knn", "--checkpoint", str(ckpt), "--train", str(train), "--val", str(val)]
    assert (
        main([*argv, "--workers", "0", "--cache-dir", str(tmp_path / "c"), "--out", str(report)])
        == 0
    )
    knn = json.loads(report.read_text())
    assert (lines[-1]["knn_top1"], lines[-1]["knn_top5"]) == (knn["top1"], knn["top5"])

    # the monitor neither consumes random numbers nor changes BN statistics or weights
    a = torch.load(tmp_path / "plain" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert all(torch.equal(a["online"][k], b["online"][k]) for k in a["online"])
    losses = [[r["loss"] for r in metrics(tmp_path / n) if "loss" in r] for n in ("plain", "run")]
    assert losses[0] == losses[1]


def test_scene_benchmark_jsons_give_top1_and_map(tiny_config: Path, tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    train_json = write_scenes(scenes, "train", 12, 0)
    test_json = write_scenes(scenes, "test", 9, 1)
    settings = [f"monitor.train={train_json}", f"monitor.val={test_json}"]
    settings += ["monitor.every_epochs=2", "monitor.resize=48", "monitor.crop=40", "epochs=2"]
    cfg = load_config(PretrainConfig, tiny_config, settings)
    assert main(
        ["pretrain", "--config", str(tiny_config), "--out", str(tmp_path / "run"),
         *[x for s in settings for x in ("--set", s)]]
    ) == 0  # fmt: skip
    (line,) = monitor_lines(tmp_path / "run")
    assert line["step"] == 6 and set(line) >= {"knn_top1", "knn_map"}

    # the same numbers from the checkpoint's backbone, computed directly
    backbone = load_pretrained(tmp_path / "run" / "checkpoints" / "last.pt").build_backbone()
    tf = center_crop_transform(cfg.monitor.resize, cfg.monitor.crop)

    def feats(path: Path) -> np.ndarray:
        images = resolve_sources([str(path)])
        paths = [Path(images.path(i)) for i in range(len(images))]
        return l2_normalize(extract_features(backbone, paths, ["avgpool"], tf)["avgpool"])

    def labels(path: Path) -> np.ndarray:
        doc = json.loads(path.read_text())
        out = np.zeros((len(doc["images"]), 3), np.float32)
        for ann in doc["annotations"]:
            out[ann["image_id"] - 100, ann["category_id"] - 1] = 1
        return out

    scores = knn_scores(feats(train_json), labels(train_json), feats(test_json), 3, 20, 0.07)
    assert line["knn_map"] == mean_average_precision(scores, labels(test_json))
    assert line["knn_top1"] == top1_hit_rate(scores, labels(test_json))


def test_multi_label_votes_and_map_on_a_hand_built_case() -> None:
    train = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
    labels = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    scores = knn_scores(train, labels, np.array([[1.0, 0.0]], np.float32), 2, k=2, temperature=1.0)
    # neighbours: train 0 (s = 1, class 0) and train 2 (s = 0.6, classes 0 and 1)
    np.testing.assert_allclose(scores, [[np.e + np.exp(0.6), np.exp(0.6)]], rtol=1e-6)
    two = np.array([[0.9, 0.1], [0.2, 0.8], [0.75, 0.7]])
    truth = np.array([[1, 0], [0, 1], [0, 1]])
    assert mean_average_precision(two, truth) == 1.0  # every positive ranked above negatives
    assert top1_hit_rate(two, truth) == pytest.approx(2 / 3)  # row 3 picks class 0


def test_rank_parts_are_put_back_in_order() -> None:
    rows = np.arange(7, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    parts = [rows[r::3] for r in range(3)]
    np.testing.assert_array_equal(interleave(parts, 7), rows)
    # more ranks than images: the ranks without images send nothing
    np.testing.assert_array_equal(interleave([rows[:1], rows[1:2], None, None], 2), rows[:2])


def test_monitor_settings_are_checked(tiny_config: Path) -> None:
    assert not load_config(PretrainConfig, tiny_config).monitor.enabled
    with pytest.raises(ConfigError, match="set both or neither"):
        load_config(PretrainConfig, tiny_config, ["monitor.train=x"])


def test_an_unusable_monitor_image_is_one_line_after_the_epoch_is_saved(
    tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_image_folder(tmp_path / "mon_train", per_class=2)
    val = write_image_folder(tmp_path / "mon_val", per_class=1)
    broken = next(val.rglob("*.JPEG"))
    broken.write_bytes(b"not an image")
    argv = ["pretrain", "--config", str(tiny_config), "--out", str(tmp_path / "run")]
    argv += ["--set", f"monitor.train={train}", "--set", f"monitor.val={val}"]
    assert main([*argv, "--set", "monitor.every_epochs=1"]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and broken.name in lines[0], lines
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["step"] == 3  # the first epoch, whose end the monitor measures
