from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from tests.checkpoints import save_tiny_checkpoint

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
