"""Pixels for stage 2: original sizes, the kNN centre crop and the warped RoI crops (sec. 3.1)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from orl.augment import IMAGENET_MEAN, IMAGENET_STD
from orl.data.crops import crop_and_warp

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """(3, H, W) float, ImageNet mean/std normalised."""
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return (arr.float() / 255.0 - MEAN) / STD


def centre_crop(img: Image.Image, resize: int, crop: int) -> torch.Tensor:
    """Resize the short side to `resize` (bilinear), centre crop `crop` x `crop` (sec. 3.1 (i))."""
    w, h = img.size
    scale = resize / min(w, h)
    nw, nh = max(crop, round(w * scale)), max(crop, round(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - crop) // 2, (nh - crop) // 2
    return to_tensor(img.crop((left, top, left + crop, top + crop)))


def warp_crops(
    img: Image.Image, boxes: np.ndarray, size: int, frame: tuple[int, int]
) -> torch.Tensor:
    """Each xywh box (in `frame` pixels) cropped and warped to size x size, no aspect kept.

    Sec. 3.1 (ii): "we crop and resize each RoI to 224 x 224". `frame` is the original size; when
    the decoder returned a smaller image (huge files) the boxes are scaled onto it.
    """
    crops = [to_tensor(crop_and_warp(img, tuple(b), frame, size)) for b in boxes.tolist()]
    return torch.stack(crops)
