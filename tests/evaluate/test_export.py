from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torchvision

from orl.evaluate.export import detectron2_checkpoint, detectron2_key, export_weights
from orl.evaluate.inputs import load_weights, random_weights


def expected_detectron2_keys(blocks: tuple[int, ...] = (3, 4, 6, 3)) -> set[str]:
    """Detectron2's ResNet-50 names, written out from its architecture, not from our renamer."""
    norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"stem.conv1.weight", *(f"stem.conv1.norm.{n}" for n in norm)}
    for stage, count in zip(range(2, 6), blocks, strict=True):
        for b in range(count):
            prefix = f"res{stage}.{b}"
            for conv in ("conv1", "conv2", "conv3"):
                keys.add(f"{prefix}.{conv}.weight")
                keys.update(f"{prefix}.{conv}.norm.{n}" for n in norm)
            if b == 0:
                keys.add(f"{prefix}.shortcut.weight")
                keys.update(f"{prefix}.shortcut.norm.{n}" for n in norm)
    return keys


def test_detectron2_keys_for_resnet50() -> None:
    ckpt = detectron2_checkpoint(random_weights("resnet50"))
    assert set(ckpt["model"]) == expected_detectron2_keys()
    assert ckpt["__author__"] == "orl" and ckpt["matching_heuristics"] is True
    assert all(isinstance(v, np.ndarray) for v in ckpt["model"].values())


def test_detectron2_renames() -> None:
    assert detectron2_key("bn1.running_mean") == "stem.conv1.norm.running_mean"
    assert detectron2_key("layer4.0.downsample.1.bias") == "res5.0.shortcut.norm.bias"
    assert detectron2_key("layer1.2.bn3.weight") == "res2.2.conv3.norm.weight"


def test_detectron2_pickle_round_trip(tmp_path: Path) -> None:
    w = random_weights("resnet18", 2)
    export_weights(w, "detectron2", tmp_path / "d2.pkl")
    with (tmp_path / "d2.pkl").open("rb") as f:
        data = pickle.load(f)
    assert np.array_equal(
        data["model"]["res3.0.shortcut.weight"], w.backbone["layer2.0.downsample.0.weight"].numpy()
    )


def test_torchvision_export_loads_strictly_and_gives_identical_outputs(tmp_path: Path) -> None:
    w = random_weights("resnet18", 3)
    export_weights(w, "torchvision", tmp_path / "tv.pth")
    net = torchvision.models.resnet18()
    net.load_state_dict(torch.load(tmp_path / "tv.pth", weights_only=True), strict=True)
    net.fc = torch.nn.Identity()  # type: ignore[assignment]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), w.build_backbone()(x))
    again = load_weights(str(tmp_path / "tv.pth"))  # an export is itself a valid --checkpoint
    assert again.arch == "resnet18"
    assert all(torch.equal(again.backbone[k], w.backbone[k]) for k in w.backbone)
