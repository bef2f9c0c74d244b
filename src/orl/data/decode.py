"""Decode any image file a long run may meet into 8-bit RGB, or say clearly why it cannot.

Handled: EXIF orientation (applied), CMYK/YCbCr/LAB, 16-bit and float grayscale (rescaled to
8 bit), palette and alpha images (alpha composited on black), 1-bit images. Refused with
`UnusableImage`: missing, zero-byte, truncated or corrupt files, non-images with an image
extension, images with a zero side, and decompression bombs.

Decompression bombs: a PNG of 60,000 x 60,000 zeros is a few MB on disk and ~11 GB as RGB.
PIL's own guard (`Image.MAX_IMAGE_PIXELS`, an error above twice that many pixels) stays on for the
whole process; this module never changes it. A JPEG above PIL's warning threshold is decoded at
reduced scale (the decoder's draft mode) small enough to stay under the guard; any other image
above the guard is refused.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)

# A truncated JPEG must be reported, not silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_JPEG_MAGIC = b"\xff\xd8\xff"


class UnusableImage(ValueError):
    """The file cannot be decoded into an image; the message says why in a few words."""


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr8 = ((arr - lo) * scale).round().clip(0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


@dataclass(frozen=True)
class Decoded:
    """A decoded image and the frame its boxes live in.

    `frame` is (width, height) at full resolution after EXIF rotation; `image` may be smaller
    when decoded with `max_side`, and boxes given in `frame` pixels are then scaled onto it.
    """

    image: Image.Image
    frame: tuple[int, int]


def _pixel_limit() -> int | None:
    """PIL's error threshold (twice `Image.MAX_IMAGE_PIXELS`), read at call time; None: off."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def _open(source: Path | BinaryIO) -> Image.Image:
    """`Image.open` under PIL's decompression-bomb guard, except that a JPEG above it is opened
    (header only) so that it can be decoded at reduced scale. `source` is a file or its bytes
    (a shard member)."""
    try:
        return Image.open(source)
    except Image.DecompressionBombError:
        if isinstance(source, Path):
            with source.open("rb") as f:
                magic = f.read(3)
        else:
            source.seek(0)
            magic = source.read(3)
            source.seek(0)
        if magic != _JPEG_MAGIC:
            raise
        return JpegImagePlugin.JpegImageFile(source)


def _draft_target(raw: Image.Image, max_side: int | None) -> int | None:
    """Side to request from a JPEG's draft mode: `max_side`, and above PIL's warning threshold a
    side whose draft stays under the guard (draft scales by 1/2, 1/4 or 1/8 and returns at least
    the side requested, so less than twice it)."""
    limit = _pixel_limit()
    if limit is not None and raw.width * raw.height > limit // 2:
        side = math.isqrt(limit // 4)
        return min(max_side, side) if max_side else side
    return max_side


def load_rgb(path: str | Path, max_side: int | None = None) -> Image.Image:
    """Open `path` as an 8-bit RGB PIL image with EXIF orientation applied (see decode_image)."""
    return decode_image(path, max_side).image


def decode_image(path: str | Path | BinaryIO, max_side: int | None = None) -> Decoded:
    """Decode `path` (a file, or the bytes of one, e.g. a shard member) to 8-bit RGB with EXIF
    orientation applied, and report its full-size frame.

    With `max_side`, images whose longer side exceeds it are shrunk (JPEGs are decoded directly at
    reduced scale, which is much faster than decoding then resizing). One file open gives both the
    pixels and the frame.
    """
    p = Path(path) if isinstance(path, str | Path) else path
    try:
        if _byte_size(p) == 0:
            raise UnusableImage("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open(p) as raw:
                w, h = raw.size
                if w <= 0 or h <= 0:
                    raise UnusableImage("zero-sized image")
                swapped = raw.getexif().get(0x0112, 1) in _SWAPPING_ORIENTATIONS
                frame = (h, w) if swapped else (w, h)
                target = _draft_target(raw, max_side)
                if target is not None and max(w, h) > target and raw.format == "JPEG":
                    raw.draft("RGB", (target, target))
                limit = _pixel_limit()
                if limit is not None and raw.width * raw.height > limit:
                    raise UnusableImage(
                        f"refused as a decompression bomb ({w} x {h} pixels, above {limit} "
                        "even at reduced size)"
                    )
                raw.load()
                img = ImageOps.exif_transpose(raw)
                if img is None:
                    img = raw
                img = _to_rgb(img)
    except UnusableImage:
        raise
    except FileNotFoundError as exc:
        raise UnusableImage("file not found") from exc
    except Image.DecompressionBombError as exc:
        raise UnusableImage(f"refused as a decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UnusableImage(first[:120] or type(exc).__name__) from exc
    if max_side is not None and max(img.size) > max_side:
        img = ImageOps.contain(img, (max_side, max_side), Image.Resampling.BILINEAR)
    return Decoded(img, frame)


def _byte_size(source: Path | BinaryIO) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    size = source.seek(0, io.SEEK_END)
    source.seek(0)
    return size


def exif_orientation(path: str | Path | BinaryIO) -> tuple[int, tuple[int, int]]:
    """(EXIF orientation 1..8, (width, height) as stored in the file), from the header only."""
    try:
        with _open(Path(path) if isinstance(path, str | Path) else path) as img:
            orientation = img.getexif().get(0x0112, 1)
            stored = img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UnusableImage(str(exc).splitlines()[0][:120] if str(exc) else "unreadable") from exc
    return (orientation if orientation in range(1, 9) else 1), stored


def oriented_size(path: str | Path | BinaryIO) -> tuple[int, int]:
    """(width, height) after EXIF rotation, read from the header only.

    This is the pixel frame boxes are stored in (stage 2); `load_rgb` with `max_side` may return
    a smaller image, onto which boxes are then scaled.
    """
    orientation, (w, h) = exif_orientation(path)
    return (h, w) if orientation in _SWAPPING_ORIENTATIONS else (w, h)
