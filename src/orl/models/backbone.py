"""ResNet backbones from torchvision, randomly initialised (trained from scratch, sec. 3.2)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def build_backbone(arch: str) -> tuple[nn.Module, int]:
    """Return a torchvision ResNet whose `fc` is an identity, and its pooled feature width.

    The output is the global-average-pooled last stage (2048-d for ResNet-50), which is what the
    projector consumes (sec. 3.2, "Network architecture"). No weights are downloaded.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch '{arch}': choose one of {', '.join(ARCHS)}")
    net: torchvision.models.ResNet = getattr(torchvision.models, arch)(weights=None)
    width = net.fc.in_features
    net.fc = nn.Identity()  # type: ignore[assignment]
    return net, width


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
