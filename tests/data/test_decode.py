"""The odd-image zoo: every file is decoded correctly or skipped and counted, never a crash."""

from __future__ import annotations

import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from orl.augment import AugmentConfig, global_view
from orl.data.decode import UnusableImage, decode_image, load_rgb, oriented_size
from orl.data.sources import resolve_sources
from orl.data.views import TwoViewDataset, collate


def _exif_rotated(path: Path) -> None:
    """A 20x10 (w x h) image whose EXIF says 'rotate 90 CW to display' (orientation 6)."""
    img = Image.new("RGB", (20, 10), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 10))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, exif=exif.tobytes())


def make_zoo(folder: Path) -> dict[str, bool]:
    """Write the zoo; return {file name: decodable}."""
    folder.mkdir(parents=True, exist_ok=True)
    good = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8))
    good.save(folder / "good.jpg")
    buf = io.BytesIO()
    good.save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "not_an_image.png").write_text("this is text, not a PNG")
    good.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray((np.arange(30 * 40).reshape(30, 40) * 50).astype(np.uint16)).save(
        folder / "sixteen_bit.png"
    )
    good.convert("P").save(folder / "palette.png")
    rgba = good.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    good.convert("L").save(folder / "gray.jpg")
    Image.new("RGB", (1, 1), (9, 9, 9)).save(folder / "tiny.png")
    _exif_rotated(folder / "exif_rotated.jpg")
    return {
        "good.jpg": True,
        "truncated.jpg": False,
        "empty.jpg": False,
        "not_an_image.png": False,
        "cmyk.jpg": True,
        "sixteen_bit.png": True,
        "palette.png": True,
        "alpha.png": True,
        "gray.jpg": True,
        "tiny.png": True,
        "exif_rotated.jpg": True,
    }


def test_each_odd_file_is_decoded_or_refused(tmp_path: Path) -> None:
    zoo = make_zoo(tmp_path)
    for name, ok in zoo.items():
        if ok:
            img = load_rgb(tmp_path / name)
            assert img.mode == "RGB" and min(img.size) >= 1, name
        else:
            with pytest.raises(UnusableImage):
                load_rgb(tmp_path / name)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    _exif_rotated(tmp_path / "r.jpg")
    img = load_rgb(tmp_path / "r.jpg")
    assert img.size == (10, 20)  # rotated to portrait
    top = np.asarray(img)[2, 5]
    assert top[2] > 200 and top[0] < 60  # the blue half is now on top


def test_sixteen_bit_uses_the_full_range(tmp_path: Path) -> None:
    arr = (np.arange(100).reshape(10, 10) * 600).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    out = np.asarray(load_rgb(tmp_path / "d.png"))
    assert out.min() == 0 and out.max() == 255


def test_max_side_shrinks_large_images(tmp_path: Path) -> None:
    Image.new("RGB", (400, 100)).save(tmp_path / "wide.jpg")
    assert load_rgb(tmp_path / "wide.jpg", max_side=100).size == (100, 25)


def test_zoo_through_the_training_loader_counts_skipped(tmp_path: Path) -> None:
    zoo = make_zoo(tmp_path / "zoo")
    images = resolve_sources([tmp_path / "zoo"])
    cfg = AugmentConfig(image_size=16)
    ds = TwoViewDataset(images, global_view(cfg, 1), global_view(cfg, 2), seed=0)
    samples = [ds[(0, i)] for i in range(len(images))]
    batch = collate(samples)
    assert batch.views["image"][0].shape == (len(zoo), 3, 16, 16)
    assert batch.views["image"][0].dtype == torch.uint8
    skipped = {Path(p).name for p, _ in batch.skipped}
    assert skipped == {n for n, ok in zoo.items() if not ok}
    # an unusable file is replaced by a usable one, never returned
    usable = {i for i in range(len(images)) if zoo[Path(images.path(i)).name]}
    assert set(batch.indices.tolist()) <= usable


def test_decode_reports_the_full_oriented_frame_of_a_shrunk_image(tmp_path: Path) -> None:
    img = Image.new("RGB", (400, 100), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated: 100 wide, 400 high
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    decoded = decode_image(tmp_path / "r.jpg", max_side=200)
    assert decoded.frame == (100, 400) == oriented_size(tmp_path / "r.jpg")
    assert decoded.image.size == (50, 200)


def write_zero_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of zeros, streamed row by row: a few KB on disk for any size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
    path.write_bytes(png + chunk(b"IEND", b""))
    return path


def test_decoding_leaves_pils_decompression_bomb_guard_on(tmp_path: Path) -> None:
    """`orl photos` and `orl scenes` run in processes that import the decoder."""
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    decode_image(tmp_path / "a.png")
    assert Image.MAX_IMAGE_PIXELS is not None


def test_a_png_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    side = math.isqrt(2 * Image.MAX_IMAGE_PIXELS) + 1  # just above PIL's error threshold
    bomb = write_zero_png(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(UnusableImage, match="decompression bomb"):
        decode_image(bomb)
    with pytest.raises(UnusableImage, match="decompression bomb"):
        oriented_size(bomb)


def test_above_the_guard_jpegs_decode_at_reduced_size_and_pngs_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.new("RGB", (128, 96), (200, 10, 10)).save(tmp_path / "big.jpg")
    Image.new("RGB", (128, 96), (200, 10, 10)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # guard: error above 2000 pixels
    decoded = decode_image(tmp_path / "big.jpg")
    assert decoded.frame == (128, 96) and decoded.image.size == (32, 24)
    assert oriented_size(tmp_path / "big.jpg") == (128, 96)
    with pytest.raises(UnusableImage, match="decompression bomb"):
        decode_image(tmp_path / "big.png")
