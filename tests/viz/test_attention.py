"""Attention maps (Figure 4): where the layer-4 activation is high, the map is high."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.checkpoints import save_tiny_checkpoint
from torch import nn

from orl.models.backbone import build_backbone
from orl.viz.attention import (
    PAD,
    TITLE_HEIGHT,
    add_attention_parser,
    attention_figure,
    attention_map,
    figure_size,
    jet,
    overlay,
    parse_checkpoint_arg,
)


def tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A resnet18 `orl pretrain` checkpoint with tiny heads (random weights)."""
    save_tiny_checkpoint(path, seed)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "run" / "checkpoints" / "last.pt")


def brightness_backbone() -> nn.Module:
    """A ResNet whose layer-4 map is the mean normalised brightness of each 32 x 32 input block."""
    net, _ = build_backbone("resnet18")
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"):
        setattr(net, name, nn.Identity())
    net.layer4 = nn.AvgPool2d(32)
    return net.eval()


@pytest.mark.parametrize("corner", ["top_left", "bottom_right"])
def test_map_peaks_where_the_planted_activation_is(corner: str) -> None:
    pixels = np.zeros((96, 128, 3), np.uint8)  # H x W
    if corner == "top_left":
        pixels[:48, :64] = 255
    else:
        pixels[48:, 64:] = 255
    amap = attention_map(brightness_backbone(), Image.fromarray(pixels), size=64)
    assert amap.shape == (96, 128)
    y, x = np.unravel_index(int(np.argmax(amap)), amap.shape)
    if corner == "top_left":
        assert y < 48 and x < 64
        assert amap[0, 0] == pytest.approx(1.0) and amap[-1, -1] == pytest.approx(0.0)
    else:
        assert y >= 48 and x >= 64
        assert amap[-1, -1] == pytest.approx(1.0) and amap[0, 0] == pytest.approx(0.0)


def test_map_of_a_real_resnet_has_the_image_size_and_spans_zero_to_one() -> None:
    net, _ = build_backbone("resnet18")
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    amap = attention_map(net.eval(), photo, size=64)
    assert amap.shape == (50, 70) and amap.dtype == np.float32
    assert amap.min() >= 0.0 and amap.max() <= 1.0
    assert amap.min() < 0.1 and amap.max() > 0.9  # min-max normalised before upsampling


def test_constant_activation_gives_an_all_zero_map() -> None:
    amap = attention_map(brightness_backbone(), Image.new("RGB", (64, 64), (90, 90, 90)), 64)
    assert np.all(amap == 0.0)


def test_jet_runs_from_dark_blue_to_dark_red() -> None:
    lo, mid, hi = jet(np.array([0.0, 0.5, 1.0]))
    assert tuple(lo) == (0, 0, 128) and tuple(hi) == (128, 0, 0)
    assert mid[1] == 255 and mid[0] == mid[2]
    dominant = jet(np.array([0.1, 0.5, 0.9])).argmax(axis=1)
    assert dominant.tolist() == [2, 1, 0]  # blue, then green, then red


def test_overlay_blends_the_heat_map_at_half_alpha() -> None:
    white = Image.new("RGB", (4, 3), (255, 255, 255))
    out = np.asarray(overlay(white, np.ones((3, 4), np.float32)))
    assert out.shape == (3, 4, 3)
    assert np.all(np.abs(out.astype(int) - (192, 128, 128)) <= 1)


def test_figure_has_a_row_per_photo_and_a_column_per_checkpoint(
    tmp_path: Path, checkpoint: Path
) -> None:
    photos = []
    for i, colour in enumerate([(250, 0, 0), (0, 0, 250)]):
        photos.append(tmp_path / f"p{i}.png")
        Image.new("RGB", (40, 30), colour).save(photos[-1])
    fig = attention_figure([("BYOL", checkpoint), ("ORL", checkpoint)], photos, size=32)
    assert fig.size == figure_size(2, 3, 32) == (PAD + 3 * 38, TITLE_HEIGHT + PAD + 2 * 38)
    px = np.asarray(fig).astype(int)
    row0 = TITLE_HEIGHT + PAD + 16
    row1 = row0 + 32 + PAD
    assert tuple(px[row0, PAD + 16]) == (250, 0, 0)  # the photo column shows the photo
    assert tuple(px[row1, PAD + 16]) == (0, 0, 250)
    overlay_px = px[row0, PAD + 38 + 16]
    assert tuple(overlay_px) != (250, 0, 0)  # the checkpoint columns are tinted
    assert px[:TITLE_HEIGHT, PAD : PAD + 38 * 3].min() < 128  # column titles are written


def test_checkpoint_argument_takes_a_label_or_names_the_run() -> None:
    assert parse_checkpoint_arg("BYOL=w/stage1/checkpoints/last.pt") == (
        "BYOL",
        Path("w/stage1/checkpoints/last.pt"),
    )
    assert parse_checkpoint_arg("w/stage3/checkpoints/last.pt") == (
        "stage3",
        Path("w/stage3/checkpoints/last.pt"),
    )


def test_cli_writes_the_figure_png(tmp_path: Path, checkpoint: Path) -> None:
    Image.new("RGB", (48, 40), (10, 200, 30)).save(tmp_path / "a.jpg")
    parser = argparse.ArgumentParser()
    add_attention_parser(parser.add_subparsers(dest="viz", required=True))
    out = tmp_path / "figs" / "attention.png"
    argv = ["attention", "--checkpoint", f"BYOL={checkpoint}", "--checkpoint", str(checkpoint)]
    argv += ["--images", str(tmp_path / "a.jpg"), "--out", str(out), "--size", "32"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == figure_size(1, 3, 32)
