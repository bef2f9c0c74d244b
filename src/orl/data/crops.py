"""Cutting a box out of an image and warping it to a square, for RoI embeddings and patches.

Stage 2 warps each kept box to 224 x 224 (sec. 3.1 (ii)); stage 3 warps RoI patches to 96 x 96
(sec. 3.1 "Stage 3"). Both crop first and then resize (bilinear, no aspect kept), as the authors'
code does, so no pixel outside the box bleeds in.
"""

from __future__ import annotations

from PIL import Image

Box = tuple[float, float, float, float]


def crop_rect(box: Box, frame: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The xywh `box`, given in `frame` pixels, as an integer left, top, right, bottom rectangle
    of an image of `size` (width, height): scaled onto it, rounded, at least one pixel."""
    sx, sy = size[0] / frame[0], size[1] / frame[1]
    x, y, w, h = box
    left = min(max(round(x * sx), 0), size[0] - 1)
    top = min(max(round(y * sy), 0), size[1] - 1)
    right = max(min(round((x + w) * sx), size[0]), left + 1)
    bottom = max(min(round((y + h) * sy), size[1]), top + 1)
    return (left, top, right, bottom)


def crop_and_warp(image: Image.Image, box: Box, frame: tuple[int, int], size: int) -> Image.Image:
    """The xywh `box`, given in `frame` pixels, cut from `image` and resized to size x size.

    Cropped first, then resized (bilinear), so no pixel outside the box bleeds in. `image` may be
    smaller than `frame` (decoded with `max_side`); the box is scaled onto it.
    """
    rect = crop_rect(box, frame, image.size)
    return image.crop(rect).resize((size, size), Image.Resampling.BILINEAR)
