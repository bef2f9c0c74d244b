"""Pixels for stage 2: original sizes, the kNN centre crop and the warped RoI crops (sec. 3.1)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def oriented_size(path: str) -> tuple[int, int]:
    """(width, height) after EXIF rotation, from the header only: the frame boxes live in.

    `load_rgb` may decode a huge JPEG at reduced scale; boxes must still be in these pixels.
    """
    with Image.open(path) as img:
        w, h = img.size
        orientation = img.getexif().get(274, 1)
    return (h, w) if orientation in _ROTATED else (w, h)


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
    sx, sy = img.size[0] / frame[0], img.size[1] / frame[1]
    crops = []
    for x, y, w, h in boxes.tolist():
        right, bottom = min((x + w) * sx, img.size[0]), min((y + h) * sy, img.size[1])
        region = (min(x * sx, right - 1e-3), min(y * sy, bottom - 1e-3), right, bottom)
        crops.append(to_tensor(img.resize((size, size), Image.Resampling.BILINEAR, box=region)))
    return torch.stack(crops)
