"""ResNet backbones from torchvision, randomly initialised (trained from scratch, sec. 3.2)."""

from __future__ import annotations

from typing import Literal

import torch
import torchvision
from torch import nn

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
# How fresh weights are drawn: "authors" as the authors' ResNet (OpenSelfSup's `init_weights`),
# "torchvision" as torchvision's own constructor.
Init = Literal["authors", "torchvision"]
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)


def build_backbone(arch: str, *, init: Init = "torchvision") -> tuple[nn.Module, int]:
    """Return a torchvision ResNet whose `fc` is an identity, and its pooled feature width.

    The output is the global-average-pooled last stage (2048-d for ResNet-50), which is what the
    projector consumes (sec. 3.2, "Network architecture"). No weights are downloaded. `init`
    picks the random initialisation (`authors_init` or torchvision's).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch '{arch}': choose one of {', '.join(ARCHS)}")
    net: torchvision.models.ResNet = getattr(torchvision.models, arch)(weights=None)
    width = net.fc.in_features
    net.fc = nn.Identity()  # type: ignore[assignment]
    if init == "authors":
        authors_init(net)
    return net, width


@torch.no_grad()
def authors_init(module: nn.Module, layers: tuple[type[nn.Module], ...] = (nn.Conv2d,)) -> None:
    """The authors' initialisation (OpenSelfSup's `init_weights`): every layer of type `layers`
    Kaiming-normal with fan_in and ReLU's gain (std sqrt(2 / fan_in)) and zero bias, every norm
    layer weight 1 and bias 0. Backbones pass their convolutions (torchvision draws those with
    fan_out instead), heads their Linears (`models/heads.py`)."""
    for m in module.modules():
        if isinstance(m, layers):
            weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
            assert isinstance(weight, torch.Tensor)
            nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)
        elif isinstance(m, NORMS):
            reset_norm(m)


def reset_norm(m: nn.Module) -> None:
    """Weight 1, bias 0 (where the norm layer has them)."""
    weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
    if isinstance(weight, torch.Tensor):
        nn.init.ones_(weight)
    if isinstance(bias, torch.Tensor):
        nn.init.zeros_(bias)


def stage_features(backbone: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Feature maps of a torchvision ResNet at the five depths the VOC07 protocol probes.

    Keys: `conv1` (after stem ReLU, before max-pool), `layer1` .. `layer4`.
    """
    assert isinstance(backbone, torchvision.models.ResNet)
    out: dict[str, torch.Tensor] = {}
    x = backbone.relu(backbone.bn1(backbone.conv1(x)))
    out["conv1"] = x
    x = backbone.maxpool(x)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        x = getattr(backbone, name)(x)
        out[name] = x
    return out
