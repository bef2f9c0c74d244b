"""Near-duplicate photos by a perceptual hash (pHash), for `orl photos`.

Consecutive frames of a clip, re-encoded or resized copies of one photo look alike to the image
kNN of stage 2, so such pairs dominate the discovered correspondences (sec. 3.1 (i)) and the
Figure-3 gallery. The DCT hash of imagehash's `phash`: the image in grayscale at 32 x 32
(Lanczos), its 2-D DCT-II, the 8 x 8 lowest frequencies, one bit each for "above their median".
Two photos are near-duplicates when the hashes differ in at most `MAX_DISTANCE` of the 64 bits.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIDE = 8
IMAGE_SIDE = 32  # 4x the hash side, as imagehash
# Measured on the demo photos (docs/design.md): every pair at distance <= 8 is two frames of one
# clip, a stereo or optical-flow pair, a re-encoded copy, or one person in the same pose; at 10 the
# aligned face crops of two different people match.
MAX_DISTANCE = 8


def _dct_matrix(n: int) -> np.ndarray:
    """Unnormalised DCT-II as a matrix (`scipy.fftpack.dct` with its defaults): C @ x = dct(x)."""
    k = np.arange(n)[:, None]
    return 2.0 * np.cos(np.pi * k * (2 * np.arange(n)[None, :] + 1) / (2 * n))


_DCT = _dct_matrix(IMAGE_SIDE)


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT hash of `image` (any mode), bit i = row-major low frequency i > median."""
    gray = image.convert("L").resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.float64)
    low = (_DCT @ pixels @ _DCT.T)[:HASH_SIDE, :HASH_SIDE]
    bits = (low > np.median(low)).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class NearDuplicates:
    """The hashes kept so far; a photo within `max_distance` bits of one of them is a duplicate."""

    def __init__(self, max_distance: int = MAX_DISTANCE) -> None:
        self.max_distance = max_distance
        self.kept: list[int] = []

    def seen(self, h: int) -> bool:
        return any(hamming(h, k) <= self.max_distance for k in self.kept)

    def add(self, h: int) -> None:
        self.kept.append(h)
