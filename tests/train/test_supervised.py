"""`orl supervised`: the scene benchmark's supervised ceiling, on tiny colour scenes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from orl.augment import AugmentConfig
from orl.cli import main
from orl.config import load_config
from orl.evaluate.scene_data import read_scene_split
from orl.train import supervised
from orl.train.config import PretrainConfig
from orl.train.supervised import (
    LabelledScenes,
    labelled_samples,
    preset_backbone,
    train_supervised,
    view_config,
)
from tests.evaluate.test_scenes import write_scenes

ROOT = Path(__file__).resolve().parents[2]
PRESET = ROOT / "configs" / "scenes_train.yaml"
TINY = ["batch_size=8", "workers=0", "augment.image_size=32", "augment.patch_size=24"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("colour-scenes"))


def test_each_target_labels_what_the_annotations_say(scenes: Path) -> None:
    split = read_scene_split(scenes, "train")
    scene = labelled_samples(split, "scene")
    assert scene.boxes is None and len(scene) == len(split)
    as_names = [
        sorted(split.categories[c] for c in np.flatnonzero(row)) for row in scene.labels.tolist()
    ]
    assert as_names == split.image_labels()
    crops = labelled_samples(split, "crops")
    assert np.array_equal(crops.labels, split.obj_category) and crops.boxes is not None
    instances = labelled_samples(split, "instances")
    assert sorted(set(instances.labels.tolist())) == list(range(len(instances.classes)))
    for a in range(len(instances)):  # same instance <=> same label
        same = split.obj_instance == split.obj_instance[a]
        assert np.array_equal(instances.labels == instances.labels[a], same)


def test_crop_flip_scene_views_are_the_scene_or_its_mirror(scenes: Path) -> None:
    split = read_scene_split(scenes, "train")
    pixels = np.stack([np.asarray(Image.open(split.images.path(i))) for i in range(3)])
    samples = labelled_samples(split, "scene")
    # A full-frame crop at the scene's size leaves only the flip: no colour op may act.
    aug = AugmentConfig(image_size=pixels.shape[1], min_scale=1.0, max_scale=1.0)
    data = LabelledScenes(pixels, samples, view_config(aug, "crop_flip"), 24, seed=0)
    for i in range(3):
        x, y = data[(0, i)]
        image = torch.from_numpy(pixels[i]).permute(2, 0, 1)
        assert torch.equal(x, image) or torch.equal(x, image.flip(-1))
        assert torch.equal(y, torch.from_numpy(samples.labels[i]))
        assert torch.equal(data[(0, i)][0], x)  # seeded per (seed, round, sample)
    byol = LabelledScenes(pixels, samples, view_config(aug, "byol"), 24, seed=0)
    changed = [not torch.equal(byol[(0, i)][0], data[(0, i)][0]) for i in range(3)]
    assert any(changed)  # BYOL's view 1 always blurs


def test_the_preset_backbone_receives_the_model_settings_the_builder_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    def builder(arch: str, proj_dim: int = 0) -> tuple[torch.nn.Module, int]:
        seen.update(arch=arch, proj_dim=proj_dim)
        return torch.nn.Identity(), 7

    monkeypatch.setattr(supervised, "build_backbone", builder)
    cfg = load_config(PretrainConfig, PRESET, ["model.proj_dim=5"])
    assert preset_backbone(cfg)[1] == 7
    assert seen == {"arch": "resnet18", "proj_dim": 5}  # tau, bn_splits, ... are not passed


def test_crop_classifier_fits_colour_categories_well_above_chance(scenes: Path) -> None:
    cfg = load_config(PretrainConfig, PRESET, [*TINY, "optim.lr=1.0", "epochs=6"])
    _, summary = train_supervised(cfg, scenes, "crops")
    assert summary["steps"] == 6 * (40 // 8) and summary["samples_seen"] == 6 * 40
    assert summary["n_classes"] == 4 and summary["input_size"] == 24
    assert summary["train_score"] >= 0.7 > summary["train_chance"] + 0.3


def test_cli_weights_load_in_eval_scenes_and_a_run_is_not_overwritten(
    scenes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "supervised"
    argv = ["supervised", "--config", str(PRESET), "--scenes", str(scenes), "--target",
            "scene", "--out", str(out), "--epochs", "1", *(f"--set={s}" for s in TINY)]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"] == "scene" and summary["steps"] == 40 // 8
    report = tmp_path / "scenes.json"
    assert main(["eval", "scenes", "--checkpoint", str(out / "backbone.pth"), "--scenes",
                 str(scenes), "--out", str(report), "--costs", "1", "--jobs", "1",
                 "--crop-size", "32"]) == 0  # fmt: skip
    assert json.loads(report.read_text())["checkpoint"].startswith("torchvision:")
    weights = (out / "backbone.pth").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--force" in err and len(err.splitlines()) == 1
    assert (out / "backbone.pth").read_bytes() == weights
    assert main([*argv, "--force", "--set=seed=1"]) == 0
    assert (out / "backbone.pth").read_bytes() != weights
