"""BYOL's two asymmetric view pipelines (sec. 3.2 "Image augmentations"; BYOL, Grill et al. 2020).

Both views: RandomResizedCrop -> horizontal flip -> colour jitter (p=0.8) -> grayscale (p=0.2) ->
Gaussian blur -> solarize. View 1 always blurs and never solarizes; view 2 blurs with p=0.1 and
solarizes with p=0.2. RoI patches (stage 3) use the same pipelines without the crop.

The pipelines run on PIL images, as in the authors' code: resizing is PIL bilinear with
antialiasing, blur is PIL's `GaussianBlur(radius=sigma)` and solarize is `ImageOps.solarize(128)`.
They return uint8 CHW tensors; normalisation happens on the training device. Every random draw
comes from torch's global generator, so seeding it per sample makes a view reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from PIL import Image, ImageFilter
from torchvision.transforms import InterpolationMode, v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of both view pipelines; defaults are the paper's (224 px global views).

    `backend`: `pil` decodes and augments in the loader workers with PIL (the reference);
    `gpu` ships the encoded images and per-view parameters and does both on the training
    device, batched (`augment_tensor.py`, `data/encoded.py`), with the same random draws.
    """

    backend: Literal["pil", "gpu"] = "pil"
    image_size: int = 224
    min_scale: float = 0.08
    max_scale: float = 1.0
    patch_size: int = 96
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_sigma_min: float = 0.1
    blur_sigma_max: float = 2.0
    solarize_threshold: int = 128
    view1_blur_p: float = 1.0
    view1_solarize_p: float = 0.0
    view2_blur_p: float = 0.1
    view2_solarize_p: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError("augment: need 0 < min_scale <= max_scale <= 1")
        if self.image_size < 8 or self.patch_size < 8:
            raise ValueError("augment: image_size and patch_size must be at least 8")


class RandomGaussianBlur(torch.nn.Module):
    """PIL Gaussian blur with sigma ~ U(sigma_min, sigma_max), applied with probability p."""

    def __init__(self, p: float, sigma_min: float, sigma_max: float) -> None:
        super().__init__()
        self.p = p
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max

    def forward(self, img: Image.Image) -> Image.Image:
        if self.p < 1.0 and torch.rand(()).item() >= self.p:
            return img
        sigma = torch.empty(()).uniform_(self.sigma_min, self.sigma_max).item()
        return img.filter(ImageFilter.GaussianBlur(radius=sigma))


def photometric(cfg: AugmentConfig, view: int) -> v2.Compose:
    """Everything after the crop: flip, jitter, grayscale, blur, solarize, to uint8 tensor."""
    if view not in (1, 2):
        raise ValueError("view must be 1 or 2")
    blur_p = cfg.view1_blur_p if view == 1 else cfg.view2_blur_p
    solarize_p = cfg.view1_solarize_p if view == 1 else cfg.view2_solarize_p
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(p=cfg.flip_p),
            v2.RandomApply(
                [v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)],
                p=cfg.jitter_p,
            ),
            v2.RandomGrayscale(p=cfg.grayscale_p),
            RandomGaussianBlur(blur_p, cfg.blur_sigma_min, cfg.blur_sigma_max),
            v2.RandomSolarize(threshold=cfg.solarize_threshold, p=solarize_p),
            v2.PILToTensor(),
        ]
    )


def global_view(cfg: AugmentConfig, view: int, size: int | None = None) -> v2.Compose:
    """RandomResizedCrop(size, scale (min, max), ratio 3/4-4/3, bilinear) + the photometric part.

    `size` defaults to `cfg.image_size`; multi-crop BYOL also asks for `cfg.patch_size` crops.
    """
    crop = v2.RandomResizedCrop(
        size or cfg.image_size,
        scale=(cfg.min_scale, cfg.max_scale),
        ratio=(3 / 4, 4 / 3),
        interpolation=InterpolationMode.BILINEAR,
        antialias=True,
    )
    return v2.Compose([crop, *photometric(cfg, view).transforms])


def normalize_on_device(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 NCHW -> float, scaled to [0, 1] and standardised with ImageNet mean/std."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=dtype).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=dtype).view(1, 3, 1, 1) * 255
    return (x.to(dtype) - mean) / std
