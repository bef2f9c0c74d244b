from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from tests.checkpoints import save_tiny_checkpoint

from orl.checkpoint import atomic_save
from orl.cli import main
from orl.evaluate.detectron2 import detectron2_key
from orl.evaluate.export import detectron2_checkpoint, export_hub_folder, export_weights
from orl.evaluate.inputs import EvalInputError, load_weights, random_weights
from orl.evaluate.model_card import read_results, training_facts


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


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_timm_export_loads_strictly_into_timm_and_gives_identical_features(
    tmp_path: Path, arch: str
) -> None:
    timm = pytest.importorskip("timm")
    w = random_weights(arch, 4)
    export_weights(w, "timm", tmp_path / "timm.pth")
    net = timm.create_model(arch, pretrained=False)
    net.load_state_dict(torch.load(tmp_path / "timm.pth", weights_only=True), strict=True)
    net.reset_classifier(0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), w.build_backbone()(x), atol=1e-5)


def _orl_checkpoint(path: Path, fingerprint: str = "ab" * 32) -> Path:
    save_tiny_checkpoint(path, seed=5, step=120, data_fingerprint=fingerprint)
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"].update(method="orl", epochs=800, batch_size=512, augment={"image_size": 224})
    ckpt["epoch"] = 400
    atomic_save(ckpt, path)
    return path


def test_safetensors_folder_loads_strictly_in_timm_and_torchvision(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    st = pytest.importorskip("safetensors.torch")
    w = random_weights("resnet18", 6)
    out = export_hub_folder(w, tmp_path / "hub", None)
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((out / "config.json").read_text())
    assert (config["architecture"], config["num_classes"], config["num_features"]) == (
        "resnet18",
        0,
        512,
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = w.build_backbone()(x)
        hub = timm.create_model(f"local-dir:{out}", pretrained=True).eval()  # timm's own loader
        assert torch.allclose(hub(x), expected, atol=1e-5)
        state = st.load_file(str(out / "model.safetensors"))
        plain = timm.create_model("resnet18", num_classes=0)
        plain.load_state_dict(state, strict=True)
        tv = torchvision.models.resnet18()
        tv.fc = torch.nn.Identity()  # type: ignore[assignment]
        tv.load_state_dict(state, strict=True)
        assert torch.equal(tv.eval()(x), expected)


def test_model_card_states_method_data_epochs_and_evaluation(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    ckpt = _orl_checkpoint(tmp_path / "last.pt")
    w = load_weights(str(ckpt))
    report = {"protocol": "voc07-svm", "checkpoint": w.identity, "layers": {"feat5": {"mAP": 0.8}}}
    knn = {"protocol": "knn", "checkpoint": w.identity, "top1": 0.5, "top5": 0.75}
    paths = []
    for name, rep in (("voc07.json", report), ("knn.json", knn)):
        (tmp_path / name).write_text(json.dumps(rep))
        paths.append(tmp_path / name)
    out = export_hub_folder(w, tmp_path / "hub", training_facts(ckpt), read_results(paths, w))
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: timm\n")
    assert "# ORL resnet18" in card and "object-level BYOL" in card
    assert f"`{'ab' * 32}`" in card
    assert "| epochs | 400 of 800 |" in card and "| steps | 120 |" in card
    assert "| VOC07 linear SVM | feat5 | mAP | 80.00 |" in card
    assert "| weighted kNN |  | top-5 | 75.00 |" in card


def test_results_of_another_checkpoint_or_unknown_content_are_refused(tmp_path: Path) -> None:
    w = random_weights("resnet18", 0)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"protocol": "knn", "checkpoint": "orl:00", "top1": 1, "top5": 1}))
    with pytest.raises(EvalInputError, match="not the exported random:resnet18:seed0"):
        read_results([other], w)
    forged = tmp_path / "forged.json"
    layers = {"<script>alert(1)</script>": {"mAP": 0.5}}
    forged.write_text(
        json.dumps({"protocol": "voc07-svm", "checkpoint": w.identity, "layers": layers})
    )
    with pytest.raises(EvalInputError, match="unknown feature depth"):
        read_results([forged], w)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"protocol": "knn", "checkpoint": w.identity}))
    with pytest.raises(EvalInputError, match="incomplete"):
        read_results([missing], w)


def test_export_cli_writes_the_hub_folder_and_rejects_results_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("safetensors")
    ckpt = _orl_checkpoint(tmp_path / "last.pt")
    identity = load_weights(str(ckpt)).identity
    results = tmp_path / "knn.json"
    results.write_text(
        json.dumps({"protocol": "knn", "checkpoint": identity, "top1": 0.25, "top5": 0.5})
    )
    argv = ["export", "--checkpoint", str(ckpt), "--results", str(results), "--out"]
    assert main([*argv, str(tmp_path / "hub"), "--format", "safetensors"]) == 0
    assert "| weighted kNN |  | top-1 | 25.00 |" in (tmp_path / "hub" / "README.md").read_text()
    assert main([*argv, str(tmp_path / "timm.pth"), "--format", "timm"]) == 2
    assert "--results" in capsys.readouterr().err
