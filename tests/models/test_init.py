"""`model.init`: the authors' Kaiming-normal fan_in initialisation against torchvision's."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from orl.config import load_config
from orl.models.backbone import build_backbone
from orl.models.byol import Encoder, OnlineNetwork
from orl.presets import PRESET_DIR
from orl.train.config import PretrainConfig


def _convs(net: nn.Module) -> list[nn.Conv2d]:
    """The convolutions with enough weights for a std within a few percent."""
    return [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() >= 20_000]


def _fans(conv: nn.Conv2d) -> tuple[int, int]:
    k = conv.kernel_size[0] * conv.kernel_size[1]
    return conv.in_channels * k, conv.out_channels * k


def test_authors_init_draws_convolutions_with_fan_in() -> None:
    torch.manual_seed(0)
    net, _ = build_backbone("resnet18", init="authors")
    convs = _convs(net)
    assert len(convs) >= 15
    for conv in convs:
        fan_in, fan_out = _fans(conv)
        std = conv.weight.std().item()
        assert std == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
        if fan_in != fan_out:  # the two rules differ here: std must match fan_in only
            assert std != pytest.approx(math.sqrt(2 / fan_out), rel=0.2)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))


def test_torchvision_init_stays_the_default_with_fan_out() -> None:
    torch.manual_seed(0)
    net, _ = build_backbone("resnet18")
    for conv in _convs(net):
        _, fan_out = _fans(conv)
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)


def test_authors_init_draws_head_linears_kaiming_normal_with_zero_bias() -> None:
    torch.manual_seed(0)
    encoder = Encoder("resnet18", 1024, 256, init="authors")
    online = OnlineNetwork(encoder, ["image"], 1024, "authors")
    linears = [m for m in online.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 4  # projector and predictor, two each
    for lin in linears:
        assert lin.weight.std().item() == pytest.approx(math.sqrt(2 / lin.in_features), rel=0.05)
        assert lin.bias is None or torch.equal(lin.bias, torch.zeros_like(lin.bias))
    torch.manual_seed(0)
    default = Encoder("resnet18", 1024, 256).projector[0]
    # PyTorch's default: Kaiming-uniform with a = sqrt(5), std 1 / sqrt(3 fan_in), uniform bias
    assert default.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 512), rel=0.05)
    assert default.bias.abs().max().item() > 0


def test_paper_presets_use_the_authors_init_and_others_torchvision() -> None:
    for preset in sorted(PRESET_DIR.glob("coco_*_r50_800ep.yaml")):
        assert load_config(PretrainConfig, preset).model.init == "authors", preset.name
    assert load_config(PretrainConfig, PRESET_DIR / "demo_byol.yaml").model.init == "torchvision"
