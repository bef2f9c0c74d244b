from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from orl.data.near_duplicates import MAX_DISTANCE, NearDuplicates, hamming, perceptual_hash


def smooth_image(seed: int, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A photo-like image: a random 4 x 3 colour field, smoothly upsampled."""
    small = np.random.default_rng(seed).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def reencoded(image: Image.Image, size: tuple[int, int], quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.resize(size, Image.Resampling.BILINEAR).save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_hash_is_imagehash_phash_computed_with_scipy() -> None:
    fftpack = pytest.importorskip("scipy.fftpack")
    for seed in range(5):
        image = smooth_image(seed)
        pixels = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), float)
        dct = fftpack.dct(fftpack.dct(pixels, axis=0), axis=1)[:8, :8]
        bits = (dct > np.median(dct)).ravel()
        assert perceptual_hash(image) == sum(1 << (63 - i) for i, b in enumerate(bits) if b)


def test_resized_reencoded_copy_is_near_and_other_photos_are_far() -> None:
    original = smooth_image(0)
    copy = reencoded(original, (64, 48), quality=60)
    assert hamming(perceptual_hash(original), perceptual_hash(copy)) <= MAX_DISTANCE
    hashes = [perceptual_hash(smooth_image(s)) for s in range(1, 8)]
    assert min(hamming(a, b) for i, a in enumerate(hashes) for b in hashes[:i]) > MAX_DISTANCE


def test_hamming_and_the_threshold_is_inclusive() -> None:
    assert hamming(0b1011, 0b0001) == 2
    near = NearDuplicates(max_distance=2)
    near.add(0)
    assert near.seen(0b11) and not near.seen(0b111)
    near.add(0b111)
    assert near.seen(0b1111)
