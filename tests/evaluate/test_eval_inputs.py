from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from tests.checkpoints import save_tiny_checkpoint

from orl.cli import main
from orl.evaluate.detectron2 import (
    DETECTOR_PREFIX,
    SafeUnpickler,
    UnsafePickle,
    detectron2_key,
    torchvision_key,
)
from orl.evaluate.inputs import EvalInputError, load_weights, random_weights
from orl.models.byol import OnlineNetwork


def write_orl_checkpoint(path: Path) -> OnlineNetwork:
    return save_tiny_checkpoint(
        path, seed=5, proj_hidden=64, proj_dim=32, step=3, data_fingerprint="x"
    )


def test_orl_checkpoint_gives_the_online_backbone(tmp_path: Path) -> None:
    online = write_orl_checkpoint(tmp_path / "ckpt.pt")
    w = load_weights(str(tmp_path / "ckpt.pt"))
    assert w.arch == "resnet18" and w.identity.startswith("orl:")
    expected = online.encoder.backbone.state_dict()
    assert all(torch.equal(w.backbone[k], expected[k]) for k in expected)


def test_torchvision_state_dict_infers_arch(tmp_path: Path) -> None:
    net = torchvision.models.resnet34()
    torch.save(net.state_dict(), tmp_path / "r34.pth")
    w = load_weights(str(tmp_path / "r34.pth"))
    assert w.arch == "resnet34" and "fc.weight" not in w.backbone
    assert torch.equal(
        w.backbone["layer3.0.conv1.weight"], net.state_dict()["layer3.0.conv1.weight"]
    )


def test_random_weights_are_seeded() -> None:
    a, b, c = (
        random_weights("resnet18", 0),
        random_weights("resnet18", 0),
        random_weights("resnet18", 1),
    )
    assert torch.equal(a.backbone["conv1.weight"], b.backbone["conv1.weight"])
    assert not torch.equal(a.backbone["conv1.weight"], c.backbone["conv1.weight"])
    assert load_weights("random:resnet18").identity == "random:resnet18:seed0"


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "no such checkpoint"), (b"not a zip", "unreadable"), ({"a": 1}, "neither an orl")],
)
def test_bad_checkpoints_raise_one_line_input_errors(
    tmp_path: Path, content: object, match: str
) -> None:
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(EvalInputError, match=match) as info:
        load_weights(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_unknown_random_arch() -> None:
    with pytest.raises(EvalInputError, match="unknown arch"):
        load_weights("random:vgg16")


@pytest.mark.parametrize(
    ("fmt", "name", "kind"),
    [
        ("torchvision", "tv.pth", "torchvision"),
        ("timm", "timm.pth", "torchvision"),
        ("safetensors", "hub", "safetensors"),
        ("detectron2", "d2.pkl", "detectron2"),
    ],
)
def test_every_export_reads_back_as_the_same_backbone(
    tmp_path: Path, fmt: str, name: str, kind: str
) -> None:
    """`orl export --format F` then `--checkpoint` on the export: the same weights, exactly."""
    if fmt == "safetensors":
        pytest.importorskip("safetensors")
    write_orl_checkpoint(tmp_path / "ckpt.pt")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    ckpt["config"].update(method="byol", epochs=2, batch_size=8)  # what the model card reads
    torch.save(ckpt, tmp_path / "ckpt.pt")
    out = tmp_path / name
    argv = ["export", "--checkpoint", str(tmp_path / "ckpt.pt"), "--format", fmt, "--out", str(out)]
    assert main(argv) == 0
    source, again = load_weights(str(tmp_path / "ckpt.pt")), load_weights(str(out))
    assert again.arch == "resnet18" and again.identity.startswith(f"{kind}:")
    assert again.backbone.keys() == source.backbone.keys()
    assert all(torch.equal(again.backbone[k], source.backbone[k]) for k in source.backbone)
    if fmt == "safetensors":  # the file inside the folder reads the same
        file = load_weights(str(out / "model.safetensors")).backbone
        assert all(torch.equal(file[k], source.backbone[k]) for k in source.backbone)


def test_detectron2_names_map_back_to_torchvision_for_every_key() -> None:
    keys = [k for k in torchvision.models.resnet50().state_dict() if not k.startswith("fc.")]
    assert [torchvision_key(detectron2_key(k)) for k in keys] == keys
    assert torchvision_key("backbone.bottom_up.res4.5.conv2.norm.bias") == "layer3.5.bn2.bias"
    assert torchvision_key("backbone.fpn_lateral2.weight") is None
    assert torchvision_key("roi_heads.box_predictor.cls_score.weight") is None


def test_a_detectors_backbone_is_read_and_its_heads_ignored(tmp_path: Path) -> None:
    """A Detectron2-trained detector: ResNet under backbone.bottom_up., FPN and heads beside it,
    no num_batches_tracked (Detectron2 drops them)."""
    net = torchvision.models.resnet18()
    model = {
        DETECTOR_PREFIX + detectron2_key(k): v.numpy()
        for k, v in net.state_dict().items()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    model["backbone.fpn_output2.weight"] = np.zeros((4, 4, 3, 3), np.float32)
    model["roi_heads.box_head.fc1.weight"] = np.zeros((8, 4), np.float32)
    with (tmp_path / "model_final.pkl").open("wb") as f:
        pickle.dump({"model": model, "__author__": "Detectron2 Model Zoo"}, f)
    w = load_weights(str(tmp_path / "model_final.pkl"))
    assert w.arch == "resnet18"
    assert torch.equal(w.backbone["layer4.1.bn2.weight"], net.state_dict()["layer4.1.bn2.weight"])
    w.build_backbone()  # loads strictly


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_detectron2_pickle_reads_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    """Protocol 2 stores bytes through `_codecs.encode`, 5 rebuilds arrays with `_frombuffer`
    (Python 3.14's default): the same weights come back."""
    net = torchvision.models.resnet18()
    model = {detectron2_key(k): v.numpy() for k, v in net.state_dict().items() if "fc." not in k}
    with (tmp_path / "w.pkl").open("wb") as f:
        pickle.dump({"model": model}, f, protocol=protocol)
    w = load_weights(str(tmp_path / "w.pkl"))
    assert all(torch.equal(w.backbone[k], v) for k, v in net.state_dict().items() if "fc." not in k)


class _Huge:
    """Pickles as numpy's array constructor asked for 2**40 float32s up front."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        reconstruct = np.zeros(1).__reduce__()[0]  # numpy's, whatever its module's name
        return reconstruct, (np.ndarray, (2**40,), np.dtype("f4"))


class _Codec:
    """Pickles as a `_codecs.encode` call with a codec other than latin1."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        import _codecs

        return _codecs.encode, ("x", "rot13")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_Huge(), "refused array reconstruction"),
        (_Codec(), "refused _codecs.encode"),
        (np.array(["a", "b"], dtype=object), "not a numeric array"),
        ("text", "not a numeric array"),
    ],
)
def test_a_pickle_outside_weight_arrays_is_one_line(
    tmp_path: Path, value: object, message: str
) -> None:
    with (tmp_path / "odd.pkl").open("wb") as f:
        pickle.dump({"model": {"stem.conv1.weight": value}}, f)
    with pytest.raises(EvalInputError, match=message) as info:
        load_weights(str(tmp_path / "odd.pkl"))
    assert "odd.pkl" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "data", [b"", b"\x80\x04garbage", pickle.dumps([1, 2])[:-3], b"\x80\x04K\x01."]
)
def test_a_damaged_or_wrong_pickle_is_one_line(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "bad.pkl").write_bytes(data)
    with pytest.raises(EvalInputError, match="not a usable Detectron2 weight pickle"):
        load_weights(str(tmp_path / "bad.pkl"))


class _Payload:
    """Unpickling this object would run a shell command that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_before_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with (tmp_path / "evil.pkl").open("wb") as f:
        pickle.dump({"model": {"stem.conv1.weight": _Payload(marker)}}, f)
    with pytest.raises(EvalInputError, match=r"refused global (posix|os)\.system"):
        load_weights(str(tmp_path / "evil.pkl"))
    assert not marker.exists()
    assert isinstance(SafeUnpickler, type) and issubclass(UnsafePickle, pickle.UnpicklingError)


def test_a_state_dict_of_another_network_is_refused_in_one_line(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    st.save_file({"conv.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(EvalInputError, match="not a torchvision ResNet") as info:
        load_weights(str(tmp_path / "other.safetensors"))
    assert "\n" not in str(info.value)
