"""The `augment.backend: gpu` data path: loader workers read bytes and draw parameters, the
training device decodes and augments whole batches.

Workers read each image's bytes (from its file, or from its member of a tar shard) and header
(size, EXIF orientation), and draw every view's augmentation parameters from the sample's seed
(`views.sample_seed`) in the PIL pipeline's order (`augment_tensor.py`), so resume stays exact
and DDP ranks draw independently. The main process decodes the batch on the device
(`torchvision.io.decode_jpeg`, nvJPEG on CUDA, batched) and applies the augmentations batched.
Files the device decoder should not see (not a baseline or progressive 8-bit RGB/gray JPEG,
EXIF-rotated, huge, or without an end marker) are decoded in the worker by the robust CPU decoder
(`data/decode.py`) and shipped as pixels; unusable files are replaced and counted exactly as on
the PIL backend. Stage 3's data set on this backend, `EncodedORLDataset`, lives with the rest of
stage 3 in `train/orl.py`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from orl.augment import AugmentConfig, normalize_on_device
from orl.augment_tensor import (
    OUT_SIZE,
    SRC,
    Rows,
    crop_resize,
    draw_global_view,
    photometric_batch,
)
from orl.data.decode import UnusableImage
from orl.data.shards import ShardError
from orl.data.sources import ImageList, decode_at
from orl.data.views import Batch, RobustImageDataset

Views = dict[str, list[torch.Tensor]]


@dataclass(frozen=True)
class EncodedImage:
    """One image as a worker ships it: JPEG bytes for the device, or pixels for odd files."""

    path: str  # the image file, or the shard holding it (`offset` >= 0)
    data: torch.Tensor  # 1-D uint8 file bytes; empty when `pixels` holds the decode
    pixels: torch.Tensor | None  # (3, H, W) uint8 from the robust CPU decoder
    size: tuple[int, int]  # (width, height) the views' rectangles refer to (PIL path's decode)
    frame: tuple[int, int]  # full-size (width, height) after EXIF rotation: the boxes' frame
    offset: int = -1  # byte offset of the image in its shard; -1 for a file
    nbytes: int = 0  # its size in the shard


def plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG the device decoder handles like PIL does, else None: baseline,
    8-bit RGB or gray, no EXIF rotation, complete (ends with the EOI marker), not huge."""
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L") or im.info.get("progressive"):
                return None
            if im.getexif().get(0x0112, 1) != 1:
                return None
            w, h = im.size
    except (OSError, SyntaxError, ValueError):
        return None
    # Above PIL's decompression-bomb threshold the robust decoder decides (reduced-size JPEG
    # decoding, or a refusal), as on the PIL path.
    limit = Image.MAX_IMAGE_PIXELS
    return (w, h) if w * h > 0 and (limit is None or w * h <= limit) else None


def contain_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """The size `decode_image(..., max_side)` shrinks an image to (PIL's `ImageOps.contain`)."""
    w, h = size
    if max_side is None or max(w, h) <= max_side:
        return size
    if w > h:
        return (max_side, max(1, round(h / w * max_side)))
    if h > w:
        return (max(1, round(w / h * max_side)), max_side)
    return (max_side, max_side)


def load_encoded(images: ImageList, index: int, max_side: int | None) -> EncodedImage:
    """Bytes and header of image `index` (its file, or its member of a shard), or the robust
    decoder's pixels (raises `UnusableImage`)."""
    where = (images.path(index), images.offset(index), int(images.sizes[index]))
    try:
        data = images.read_bytes(index)
    except (OSError, ShardError):
        data = b""
    size = plain_jpeg_size(data)
    if size is not None:
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return EncodedImage(where[0], raw, None, contain_size(size, max_side), size, *where[1:])
    decoded = images.decode(index, max_side)
    pixels = torch.from_numpy(np.asarray(decoded.image).copy()).permute(2, 0, 1).contiguous()
    empty = torch.empty(0, dtype=torch.uint8)
    return EncodedImage(where[0], empty, pixels, decoded.image.size, decoded.frame, *where[1:])


class EncodedTwoViewDataset(RobustImageDataset[EncodedImage]):
    """Stage 1 and multi-crop BYOL on the gpu backend: `data/views.py: TwoViewDataset`'s views as
    parameter rows (two global views, then `crop_pairs` pairs of `patch_size` crops)."""

    def __init__(
        self,
        images: ImageList,
        augment: AugmentConfig,
        seed: int,
        max_side: int | None = None,
        crop_pairs: int = 0,
    ) -> None:
        super().__init__(images, seed, max_side)
        self.augment = augment
        self.crop_pairs = crop_pairs

    def load(self, index: int) -> EncodedImage:
        return load_encoded(self.images, index, self.max_side)

    def make_views(self, index: int, loaded: EncodedImage) -> Views:
        self.shipped = [loaded]
        cfg, (w, h) = self.augment, loaded.size
        views = {"image": [draw_global_view(cfg, 1, w, h), draw_global_view(cfg, 2, w, h)]}
        for k in range(self.crop_pairs):
            views[f"crops{k}"] = [
                draw_global_view(cfg, view, w, h, cfg.patch_size) for view in (1, 2)
            ]
        return views


def _decode_jpegs(images: list[EncodedImage], device: torch.device) -> list[torch.Tensor]:
    with warnings.catch_warnings():
        # torchvision >= 0.29 marks its decoders deprecated in favour of TorchCodec
        warnings.simplefilter("ignore", DeprecationWarning)
        return list(decode_jpeg([im.data for im in images], mode=ImageReadMode.RGB, device=device))


def _decode_one(
    image: EncodedImage, device: torch.device, skipped: list[tuple[str, str]]
) -> torch.Tensor:
    """Last resort when a batch decode fails: this image alone, then the robust CPU decoder,
    then (unusable after all) a mid-gray image, reported as skipped."""
    try:
        return _decode_jpegs([image], device)[0]
    except RuntimeError:
        pass
    try:
        decoded = decode_at(image.path, image.offset, image.nbytes)
    except UnusableImage as exc:
        skipped.append((image.path, str(exc)))
        w, h = image.size
        return torch.full((3, h, w), 128, dtype=torch.uint8, device=device)
    pixels = torch.from_numpy(np.asarray(decoded.image).copy()).permute(2, 0, 1)
    return pixels.to(device)


def decode_images(
    encoded: list[EncodedImage], device: torch.device, skipped: list[tuple[str, str]]
) -> list[torch.Tensor]:
    """Every image of a batch on `device` as (3, H, W) at its `size`: JPEG bytes decoded in one
    batched call (nvJPEG on CUDA), shipped pixels copied; an image shipped twice is decoded once."""
    first: dict[int, int] = {}
    unique: list[EncodedImage] = []
    for im in encoded:
        if id(im) not in first:
            first[id(im)] = len(unique)
            unique.append(im)
    jpegs = [im for im in unique if im.pixels is None]
    decoded: list[torch.Tensor] = []
    if jpegs:
        try:
            decoded = _decode_jpegs(jpegs, device)
        except RuntimeError:
            decoded = [_decode_one(im, device, skipped) for im in jpegs]
    it = iter(decoded)
    pixels = []
    for im in unique:
        p = next(it) if im.pixels is None else im.pixels.to(device, non_blocking=True)
        w, h = im.size
        if p.shape[-2:] != (h, w):  # decoded at full size, drawn on the `max_side` decode
            p = F.interpolate(p[None].float(), (h, w), mode="bilinear", antialias=True)[0]
        pixels.append(p)
    return [pixels[first[id(im)]] for im in encoded]


def render_views(batch: Batch, device: torch.device, augment: AugmentConfig) -> Views:
    """Decode and augment a gpu-backend batch: (N, 3, S, S) float views in [0, 255] per branch.

    The rows of every view with the same output side are cut and augmented in one batch.
    """
    images = decode_images(batch.encoded, device, batch.skipped)
    n = len(batch.indices)
    offset = torch.arange(n, dtype=torch.float64) * (len(batch.encoded) // n)
    groups: dict[int, list[tuple[str, int]]] = {}
    for branch, tables in batch.views.items():
        for v, table in enumerate(tables):
            groups.setdefault(int(table[0, OUT_SIZE]), []).append((branch, v))
    out: Views = {branch: list(tables) for branch, tables in batch.views.items()}
    for members in groups.values():
        table = torch.cat([batch.views[b][v] for b, v in members])
        table[:, SRC] += offset.repeat(len(members))
        rows = Rows(table)
        pixels = photometric_batch(crop_resize(images, rows), rows, augment)
        for (b, v), chunk in zip(members, pixels.split(n), strict=True):
            out[b][v] = chunk
    return out


def device_views(
    batch: Batch,
    device: torch.device,
    memory_format: torch.memory_format,
    augment: AugmentConfig,
) -> Views:
    """The network's input for one batch on either backend: normalised float views on `device`.

    PIL backend: the workers' uint8 views, copied (asynchronously from pinned memory) and
    normalised. gpu backend: decoded and augmented here first (`render_views`).
    """
    if batch.encoded:
        pixels = render_views(batch, device, augment)
    else:
        pixels = {b: [v.to(device, non_blocking=True) for v in vs] for b, vs in batch.views.items()}
    return {
        b: [normalize_on_device(v).contiguous(memory_format=memory_format) for v in vs]
        for b, vs in pixels.items()
    }
