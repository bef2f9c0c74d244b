"""Frozen features of whole scenes and of object crops, from a backbone or hand-crafted.

Every featurizer maps a batch of RGB images in [0, 1], shape (B, 3, S, S), to (B, D) features:
- the backbone's pooled output (`fc` = identity: the global average of `layer4`, 512-d for
  ResNet-18), after ImageNet normalisation; at scene sizes (96-160 px) `layer4` is only 3x3 to 5x5,
  too small for the VOC07 protocol's `feat5` pooling (6x6 kernel), so the global average is used;
- `color_hist`: the 6x6x6 RGB histogram, normalised to sum 1 (docs/scenes.md);
- `raw_pixels`: the image shrunk to 16x16 (antialiased), flattened; standardised later, with the
  training split's statistics, by the classifiers.

Images are decoded once into memory (`scene_data.decode_scenes`), not read per batch as in
`features.extract_features`, because the crops are cut from the same decoded scenes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orl.augment import IMAGENET_MEAN, IMAGENET_STD
from orl.progress import progress

Featurizer = Callable[[torch.Tensor], torch.Tensor]
HIST_BINS = 6
RAW_SIDE = 16


def backbone_featurizer(backbone: nn.Module, device: torch.device | None = None) -> Featurizer:
    """ImageNet-normalise, forward the frozen backbone (eval mode), return its pooled output."""
    device = device or torch.device("cpu")
    net = backbone.eval().to(device).to(memory_format=torch.channels_last)  # faster CPU convs
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def features(x: torch.Tensor) -> torch.Tensor:
        x = ((x.to(device) - mean) / std).contiguous(memory_format=torch.channels_last)
        out: torch.Tensor = net(x)
        return out.flatten(1).float().cpu()

    return features


def color_histogram(x: torch.Tensor, bins: int = HIST_BINS) -> torch.Tensor:
    """(B, bins**3) joint RGB histogram per image, each row summing to 1."""
    q = (x * bins).long().clamp_(0, bins - 1)
    index = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    flat = index.flatten(1) + bins**3 * torch.arange(len(x)).unsqueeze(1)
    counts = torch.bincount(flat.flatten(), minlength=len(x) * bins**3).view(len(x), bins**3)
    return counts.float() / index[0].numel()


def raw_pixels(x: torch.Tensor, side: int = RAW_SIDE) -> torch.Tensor:
    """(B, 3 * side * side) pixels of the image shrunk to side x side."""
    small = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
    return small.flatten(1)


BASELINES: dict[str, Featurizer] = {"color_hist": color_histogram, "raw_pixels": raw_pixels}


def _to_float(images: np.ndarray, size: int | None) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, size, size) float in [0, 1]; squashed if not square."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    if size is not None and x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True).clamp_(0, 1)
    return x


def scene_batches(images: np.ndarray, size: int | None, batch_size: int) -> Iterator[torch.Tensor]:
    """Whole scenes in batches, resized to `size` (None: as they are)."""
    for start in range(0, len(images), batch_size):
        yield _to_float(images[start : start + batch_size], size)


def square_crop(box: np.ndarray, width: int, height: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the crop of one visible box (xywh).

    A square of side max(w, h) around the box centre, shifted (not cut) to lie inside the image so
    that it stays square; its side is capped at the image's shorter side. The object is therefore
    centred unless it touches the border, and the context around it is the scene's own pixels.
    """
    x, y, w, h = (float(v) for v in box)
    side = round(min(max(w, h, 1.0), width, height))
    x0 = round(x + w / 2 - side / 2)
    y0 = round(y + h / 2 - side / 2)
    return min(max(x0, 0), width - side), min(max(y0, 0), height - side), side


def crop_batches(
    images: np.ndarray,
    owner: np.ndarray,
    boxes: np.ndarray,
    crop_size: int,
    batch_size: int,
) -> Iterator[torch.Tensor]:
    """Object crops (`square_crop`) resized to crop_size x crop_size, in batches."""
    height, width = images.shape[1:3]
    for start in range(0, len(owner), batch_size):
        crops = []
        rows = slice(start, start + batch_size)
        for i, box in zip(owner[rows], boxes[rows], strict=True):
            x0, y0, side = square_crop(box, width, height)
            patch = images[i, y0 : y0 + side, x0 : x0 + side]
            crops.append(_to_float(patch[None], crop_size))
        yield torch.cat(crops)


def featurize(
    batches: Iterator[torch.Tensor],
    featurizers: Mapping[str, Featurizer],
    total: int | None = None,
    desc: str = "features",
) -> dict[str, np.ndarray]:
    """Run every featurizer on every batch (one pass over the images); float32 matrices.

    `total` (the number of batches) gives the progress bar its ETA.
    """
    parts: dict[str, list[np.ndarray]] = {name: [] for name in featurizers}
    for x in progress(batches, total=total, desc=desc, unit="batch"):
        for name, f in featurizers.items():
            parts[name].append(f(x).numpy().astype(np.float32))
    return {name: np.concatenate(p) for name, p in parts.items()}
