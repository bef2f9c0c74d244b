"""Attention maps of a pre-trained backbone, like Figures 4 and 6 of the paper (sec. 4.3, app. A).

The paper does not say how its maps are computed; ours are activation-based maps of the online
backbone's last stage, defined exactly as follows (also in docs/report.md):

1. The whole photo (EXIF-rotated RGB) is resized to `size` x `size` (no crop, so every part of the
   photo gets a value; the aspect distortion is undone in step 5), scaled to [0, 1] and normalised
   with the ImageNet mean and std, as stage 2 and the evaluation feed the network.
2. The online backbone's layer-4 activation A (C x h x w, h = w = ceil(size / 32)) is computed
   in eval mode. A >= 0: torchvision's last residual block ends in a ReLU.
3. A is reduced over channels by the mean: M(y, x) = (1 / C) sum_c A[c, y, x]. This is the map
   whose spatial mean is the mean of the global-average-pooled representation the projector
   consumes (sec. 3.2), so it shows where the representation's mass comes from. (The channel L2
   norm would weigh a few very active channels more; the mean keeps that link to the pooled vector.)
4. M is min-max normalised to [0, 1] (a constant map becomes all zeros).
5. M is upsampled bilinearly (align_corners=False) to the photo's height x width.

The overlay blends a jet-like colour map of the result onto the photo with alpha 0.5.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from orl.artifacts import atomic_open
from orl.data.decode import load_rgb
from orl.discover.images import to_tensor
from orl.models.backbone import stage_features
from orl.models.pretrained import load_pretrained

DEFAULT_SIZE = 224
MIN_SIZE = 32
ALPHA = 0.5
PAD = 6
TITLE_HEIGHT = 18
PHOTO_TITLE = "photo"
# Photos are decoded at most this many times the network input: enough for a sharp overlay,
# bounded memory for camera-sized files.
DECODE_FACTOR = 4


def _device_of(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def attention_map(backbone: nn.Module, image: Image.Image, size: int) -> np.ndarray:
    """(H, W) float32 map in [0, 1] for an RGB `image` of H x W pixels (steps 1-5 above).

    `backbone` is a torchvision ResNet (e.g. `Pretrained.build_backbone()`), used as it is.
    """
    x = to_tensor(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    with torch.inference_mode():
        act = stage_features(backbone, x.unsqueeze(0).to(_device_of(backbone)))["layer4"]
        m = act.float().mean(dim=1, keepdim=True)
        lo, hi = m.min(), m.max()
        m = (m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)
        up = F.interpolate(
            m, size=(image.height, image.width), mode="bilinear", align_corners=False
        )
    # Bilinear interpolation of values in [0, 1] stays in [0, 1] up to rounding.
    return up[0, 0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)


def jet(values: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours of values in [0, 1]: blue (0) - cyan - yellow - red (1), like jet."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)[..., None]
    # Each channel is a trapezoid centred at 3/4 (red), 1/2 (green) and 1/4 (blue).
    centres = np.array([0.75, 0.5, 0.25], dtype=np.float32)
    rgb = np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0)
    return np.asarray(np.round(rgb * 255.0), dtype=np.uint8)


def overlay(image: Image.Image, amap: np.ndarray, alpha: float = ALPHA) -> Image.Image:
    """`image` with `jet(amap)` blended on top (`amap` has the image's height x width)."""
    heat = Image.fromarray(jet(amap), mode="RGB")
    return Image.blend(image.convert("RGB"), heat, alpha)


def fit_cell(image: Image.Image, cell: int) -> Image.Image:
    """`image` scaled to fit a `cell` x `cell` square, centred on white (aspect kept)."""
    scale = cell / max(image.width, image.height)
    w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    out = Image.new("RGB", (cell, cell), (255, 255, 255))
    out.paste(image.resize((w, h), Image.Resampling.BILINEAR), ((cell - w) // 2, (cell - h) // 2))
    return out


def figure_size(rows: int, columns: int, cell: int) -> tuple[int, int]:
    """(width, height) of a grid of `rows` x `columns` cells under one title row."""
    return PAD + columns * (cell + PAD), TITLE_HEIGHT + PAD + rows * (cell + PAD)


def attention_figure(
    checkpoints: Sequence[tuple[str, Path]], images: Sequence[Path | str], size: int
) -> Image.Image:
    """Figure 4 layout: one row per photo; columns: the photo, then its overlay per checkpoint.

    Column titles are "photo" and the checkpoint labels; each cell is `size` x `size` pixels.
    Raises UnusableImage for a photo that cannot be decoded, CheckpointError for a bad checkpoint.
    """
    backbones = [load_pretrained(Path(path)).build_backbone() for _, path in checkpoints]
    titles = [PHOTO_TITLE, *(label for label, _ in checkpoints)]
    fig = Image.new("RGB", figure_size(len(images), len(titles), size), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    for col, title in enumerate(titles):
        draw.text((PAD + col * (size + PAD), 3), title, fill=(0, 0, 0))
    for row, path in enumerate(images):
        photo = load_rgb(path, max_side=DECODE_FACTOR * size)
        cells = [photo, *(overlay(photo, attention_map(b, photo, size)) for b in backbones)]
        top = TITLE_HEIGHT + PAD + row * (size + PAD)
        for col, cell in enumerate(cells):
            fig.paste(fit_cell(cell, size), (PAD + col * (size + PAD), top))
    return fig


def parse_checkpoint_arg(value: str) -> tuple[str, Path]:
    """`LABEL=PATH` or `PATH`; a bare path is labelled by its run folder (RUN/checkpoints/x.pt)."""
    label, sep, rest = value.partition("=")
    if sep and label and rest and not Path(value).exists():
        return label, Path(rest)
    path = Path(value)
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return (run.name or path.stem), path


def cmd_attention(args: argparse.Namespace) -> int:
    """`orl viz attention`: write the attention figure of the given checkpoints and photos."""
    if args.size < MIN_SIZE:
        raise ValueError(f"--size {args.size}: must be at least {MIN_SIZE} (the backbone's stride)")
    checkpoints = [parse_checkpoint_arg(v) for v in args.checkpoint]
    fig = attention_figure(checkpoints, args.images, args.size)
    out: Path = args.out
    with atomic_open(out) as handle:
        fig.save(handle, format="PNG")
    print(f"attention maps of {len(checkpoints)} checkpoint(s), {len(args.images)} photo(s): {out}")
    return 0


def add_attention_parser(
    viz_subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `attention` on the `viz` command group's sub-parsers (argparse's add_subparsers)."""
    p = viz_subparsers.add_parser(
        "attention", help="layer-4 attention maps of checkpoints (Figure 4 of the paper)"
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="[LABEL=]PATH",
        help="an `orl pretrain` checkpoint; repeat for one column each (e.g. BYOL=stage1/...)",
    )
    p.add_argument("--images", type=Path, nargs="+", required=True, help="photos, one row each")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help="network input side and cell side (pixels)"
    )
    p.set_defaults(func=cmd_attention)
    return p
