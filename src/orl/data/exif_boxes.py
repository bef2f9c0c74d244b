"""Boxes between a photo's stored pixel frame and its displayed (EXIF-oriented) frame.

orl decodes every image with its EXIF orientation applied (`data/decode.py`), so stage-2 boxes
are in the displayed frame. The authors' code read images without applying it, so the boxes of
their correspondence and proposal files are in the frame the pixels are stored in. Their files
are converted on import and ours back on export; the two differ only for photos whose EXIF
orientation is not 1 (camera photos taken sideways).

Orientation k displays the stored W x H pixels as PIL's `ImageOps.exif_transpose` does: 2 mirror,
3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
counter-clockwise. A box maps through its two corners, exactly, in integer pixels.
"""

from __future__ import annotations

import numpy as np

from orl.data.decode import UnusableImage, exif_orientation
from orl.data.sources import ImageList

# Orientation k maps a stored point (x, y) of a W x H image to the displayed point
# (a * x + b * y + c * W + d * H, e * x + f * y + g * W + h * H).
_MAPS = {
    1: ((1, 0, 0, 0), (0, 1, 0, 0)),
    2: ((-1, 0, 1, 0), (0, 1, 0, 0)),
    3: ((-1, 0, 1, 0), (0, -1, 0, 1)),
    4: ((1, 0, 0, 0), (0, -1, 0, 1)),
    5: ((0, 1, 0, 0), (1, 0, 0, 0)),
    6: ((0, -1, 0, 1), (1, 0, 0, 0)),
    7: ((0, -1, 0, 1), (-1, 0, 1, 0)),
    8: ((0, 1, 0, 0), (-1, 0, 1, 0)),
}
_INVERSE = {6: 8, 8: 6}  # the others undo themselves
_SWAPS = (5, 6, 7, 8)

Frame = tuple[int, tuple[int, int]]  # (orientation, stored (width, height))


def _apply(boxes: np.ndarray, orientation: int, size: tuple[int, int]) -> np.ndarray:
    (a, b, c, d), (e, f, g, h) = _MAPS[orientation]
    w, hgt = size
    xy = np.asarray(boxes, np.int64).reshape(-1, 4)
    x1, y1 = xy[:, 0], xy[:, 1]
    x2, y2 = x1 + xy[:, 2], y1 + xy[:, 3]
    px = [a * x + b * y + c * w + d * hgt for x, y in ((x1, y1), (x2, y2))]
    py = [e * x + f * y + g * w + h * hgt for x, y in ((x1, y1), (x2, y2))]
    left, top = np.minimum(*px), np.minimum(*py)
    return np.stack([left, top, np.maximum(*px) - left, np.maximum(*py) - top], axis=1)


def to_displayed(boxes: np.ndarray, frame: Frame) -> np.ndarray:
    """xywh boxes in the stored frame -> the displayed (EXIF-oriented) frame."""
    orientation, stored = frame
    return _apply(boxes, orientation, stored)


def to_stored(boxes: np.ndarray, frame: Frame) -> np.ndarray:
    """xywh boxes in the displayed frame -> the stored frame (undoes `to_displayed`)."""
    orientation, (w, h) = frame
    displayed = (h, w) if orientation in _SWAPS else (w, h)
    return _apply(boxes, _INVERSE.get(orientation, orientation), displayed)


def image_frames(images: ImageList) -> list[Frame]:
    """Each image's orientation and stored size (orientation 1 for a file that cannot be read:
    its boxes are placeholders, and converting them would change nothing useful)."""
    frames: list[Frame] = []
    for i in range(len(images)):
        try:
            frames.append(exif_orientation(images.source(i)))
        except UnusableImage:
            frames.append((1, (0, 0)))
    return frames
