"""BYOL's two asymmetric view pipelines on batched tensors (sec. 3.2 "Image augmentations"): the
`augment.backend: gpu` path.

Two halves. The *draws* run in the data-loader workers on no pixels at all: per view one row of
parameters (crop rectangle, flip, colour-jitter order and factors, grayscale, blur sigma, solarize),
taken from torch's global generator in exactly the order in which `augment.py`'s PIL pipelines
consume it. Seeded per sample, the same seed therefore gives the same crop, flip, ... on both
backends, which is what the tests compare. The *ops* run in the main process on the training
device, on a whole batch at once with per-row parameters and no host-device synchronisation.

Pixels differ from the PIL pipeline only where the kernels do (docs/design.md measures by how
much): antialiased bilinear resizing (PyTorch's, designed to match PIL's), colour operations in
float instead of 8-bit steps, and a sampled Gaussian blur (PIL approximates it by box filters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from orl.augment import AugmentConfig

# Columns of a parameter row (one row per view per sample).
SRC = 0  # which image of the sample the view is cut from (0: its own, 1: the inter-RoI neighbour)
BOX = slice(1, 5)  # crop rectangle left, top, right, bottom, in the sample image's `size` pixels
FLIP = 5
JITTER = 6  # 1: colour jitter applied
ORDER = slice(
    7, 11
)  # the jitter operations in order: 0 brightness, 1 contrast, 2 saturation, 3 hue
FACTORS = slice(11, 15)  # brightness, contrast, saturation, hue factors (identity when not drawn)
GRAY = 15
SIGMA = 16  # Gaussian blur sigma; 0: no blur
SOLARIZE = 17
OUT_SIZE = 18  # output side in pixels
ROW = 19

_IDENTITY_FACTORS = (1.0, 1.0, 1.0, 0.0)
_RATIO = (3 / 4, 4 / 3)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, PIL's convert("L")

Rect = tuple[int, int, int, int]  # left, top, right, bottom


def draw_crop(width: int, height: int, scale: tuple[float, float]) -> Rect:
    """RandomResizedCrop's rectangle: area U(scale) x image area, log-uniform aspect in [3/4, 4/3],
    up to 10 tries, else the central crop of the clamped aspect.

    Mirrors `torchvision.transforms.v2.RandomResizedCrop.make_params` draw for draw (the PIL path),
    so a seeded sample gets the same rectangle on both backends.
    """
    area = height * width
    log_ratio = torch.log(torch.tensor(_RATIO))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()  # type: ignore[arg-type]
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - w + 1, size=(1,)).item())
            return (left, top, left + w, top + h)
    in_ratio = width / height
    if in_ratio < min(_RATIO):
        w, h = width, round(width / min(_RATIO))
    elif in_ratio > max(_RATIO):
        w, h = round(height * max(_RATIO)), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return (left, top, left + w, top + h)


def _hit(p: float) -> bool:
    """torchvision's random-apply test: applied when U(0, 1) < p (a draw is taken even at p=0)."""
    return not bool(torch.rand(1) >= p)


def _factor(spread: float, centre: float, low: float = 0.0) -> float | None:
    """ColorJitter's factor range: None (no draw) when the spread is 0."""
    if spread == 0:
        return None
    return float(torch.empty(1).uniform_(max(low, centre - spread), centre + spread).item())


def draw_photometric(cfg: AugmentConfig, view: int) -> list[float]:
    """Flip, colour jitter, grayscale, blur and solarize of one view (columns FLIP..SOLARIZE).

    The draw order and tests of `augment.photometric`: flip (p 0.5), jitter (p 0.8; a random
    order of the four operations, then brightness, contrast, saturation, hue factors), grayscale
    (p 0.2), blur (view 1: p 1, view 2: p 0.1; sigma U(0.1, 2)), solarize (view 1: p 0, view 2:
    p 0.2).
    """
    if view not in (1, 2):
        raise ValueError("view must be 1 or 2")
    blur_p = cfg.view1_blur_p if view == 1 else cfg.view2_blur_p
    solarize_p = cfg.view1_solarize_p if view == 1 else cfg.view2_solarize_p
    flip = _hit(cfg.flip_p)
    order, factors, jitter = [0.0, 1.0, 2.0, 3.0], list(_IDENTITY_FACTORS), _hit(cfg.jitter_p)
    if jitter:
        order = [float(i) for i in torch.randperm(4).tolist()]
        drawn = (
            _factor(cfg.brightness, 1.0),
            _factor(cfg.contrast, 1.0),
            _factor(cfg.saturation, 1.0),
            _factor(cfg.hue, 0.0, low=-cfg.hue),
        )
        factors = [f if f is not None else factors[k] for k, f in enumerate(drawn)]
    gray = _hit(cfg.grayscale_p)
    sigma = 0.0
    if blur_p >= 1.0 or torch.rand(()).item() < blur_p:
        sigma = torch.empty(()).uniform_(cfg.blur_sigma_min, cfg.blur_sigma_max).item()
    solarize = _hit(solarize_p)
    return [float(flip), float(jitter), *order, *factors, float(gray), sigma, float(solarize)]


def view_row(rect: Rect, photometric: list[float], size: int, src: int = 0) -> torch.Tensor:
    """One parameter row (float64; exact for pixel coordinates and indices)."""
    return torch.tensor(
        [float(src), *map(float, rect), *photometric, float(size)], dtype=torch.float64
    )


def draw_global_view(
    cfg: AugmentConfig, view: int, width: int, height: int, size: int | None = None
) -> torch.Tensor:
    """A global view of a width x height image: `augment.global_view` without the pixels."""
    rect = draw_crop(width, height, (cfg.min_scale, cfg.max_scale))
    return view_row(rect, draw_photometric(cfg, view), size or cfg.image_size)


@dataclass(frozen=True)
class Rows:
    """Parameter rows as the host sees them: columns read without touching the device."""

    table: torch.Tensor  # (N, ROW) float64, on the CPU

    def flag(self, column: int) -> torch.Tensor:
        return self.table[:, column] > 0.5

    def values(self, column: int | slice, device: torch.device) -> torch.Tensor:
        """float32 column(s) on `device`, shaped to broadcast over (N, C, H, W)."""
        col = self.table[:, column].to(torch.float32)
        return col.reshape(len(col), -1, 1, 1).to(device, non_blocking=True)


def resize_crops(
    images: list[torch.Tensor], crops: list[tuple[int, Rect]], size: int
) -> torch.Tensor:
    """(N, 3, size, size) float32 in [0, 255]: each (image index, rectangle) cut out and resized
    with antialiased bilinear interpolation (PyTorch's kernel made to match PIL's BILINEAR
    resize); `images` are (3, H, W) tensors of any dtype on the device."""
    as_float: dict[int, torch.Tensor] = {}
    out = []
    for src, (left, top, right, bottom) in crops:
        if src not in as_float:
            as_float[src] = images[src].float()
        crop = as_float[src][None, :, top:bottom, left:right]
        out.append(F.interpolate(crop, (size, size), mode="bilinear", antialias=True))
    return torch.cat(out).clamp_(0, 255)


def crop_resize(images: list[torch.Tensor], rows: Rows) -> torch.Tensor:
    """Every row's rectangle cut from images[SRC] (at the size it was drawn on) and resized to
    the rows' common output side (`resize_crops`)."""
    size = int(rows.table[0, OUT_SIZE])
    if not bool((rows.table[:, OUT_SIZE] == size).all()):
        raise ValueError("crop_resize needs rows of one output size")
    crops = [
        (src, (left, top, right, bottom))
        for src, left, top, right, bottom in rows.table[:, :5].long().tolist()
    ]
    return resize_crops(images, crops, size)


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) grayscale of RGB (N, 3, H, W), PIL's weights."""
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB (N, 3, H, W) in [0, 1] by `shift` (N,) turns (ColorJitter's hue).

    RGB -> HSV -> RGB as PIL and torchvision's `adjust_hue` do, with a shift per image.
    """
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    flat = maxc == minc  # gray pixels: hue 0, saturation 0 (avoids 0 / 0)
    spread = maxc - minc
    sat = spread / torch.where(flat, torch.ones_like(maxc), maxc)
    rc, gc, bc = ((maxc.unsqueeze(1) - x) / torch.where(flat, 1.0, spread).unsqueeze(1)).unbind(1)
    r, g, _ = x.unbind(1)
    is_r, is_g = maxc == r, (maxc == g) & (maxc != r)
    is_b = ~(is_r | is_g)
    hue = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc)
    hue = (hue / 6.0 + 1.0 + shift.view(-1, 1, 1)).remainder(1.0)
    h6 = hue * 6
    sector = h6.floor()
    frac = h6 - sector
    sector = sector.long().remainder(6)
    v = maxc
    p = (v * (1 - sat)).clamp(0, 1)
    q = (v * (1 - sat * frac)).clamp(0, 1)
    t = (v * (1 - sat * (1 - frac))).clamp(0, 1)
    # per sector (0..5), which of (v, p, q, t) is R, G and B
    pick = torch.tensor(
        [[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]], device=x.device
    )
    vpqt = torch.stack((v, p, q, t), 1)
    return vpqt.gather(1, pick[:, sector].movedim(0, 1))


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with one sigma per image (a CPU tensor), taps
    -radius..radius renormalised, edges replicated (as PIL's blur treats them)."""
    n, c, h, w = x.shape
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps[None] / sigma.double()[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).float().repeat_interleave(c, 0)
    kernel = kernel.to(x.device, non_blocking=True)
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, kernel[:, None, :, None], groups=n * c)
    y = F.conv2d(y, kernel[:, None, None, :], groups=n * c)
    return y.reshape(n, c, h, w)


def blur_radius(cfg: AugmentConfig) -> int:
    """Kernel half-width: 3 sigma of the largest sigma (99.7% of the Gaussian's mass)."""
    return max(1, math.ceil(3 * cfg.blur_sigma_max))


def _jitter(x: torch.Tensor, rows: Rows) -> torch.Tensor:
    """Colour jitter with each row's own order and factors. Brightness, contrast and saturation
    are blends f x + (1 - f) y with y = 0, the mean gray level, the gray image; hue rotates."""
    applied = rows.flag(JITTER)
    order = rows.table[:, ORDER].long()
    factors = rows.table[:, FACTORS]
    for k in range(4):
        op = order[:, k]
        blend = applied & (op < 3)
        if bool(blend.any()):
            f = torch.where(blend, factors.gather(1, op.clamp(max=2)[:, None])[:, 0], 1.0)
            f_dev = f.float().view(-1, 1, 1, 1).to(x.device, non_blocking=True)
            weights = torch.stack([blend & (op == 1), blend & (op == 2)], 1).float()
            w = weights.view(-1, 2, 1, 1).to(x.device, non_blocking=True)
            gray = luma(x)
            target = w[:, :1] * gray.mean((2, 3), keepdim=True) + w[:, 1:] * gray
            x = (f_dev * x + (1 - f_dev) * target).clamp_(0, 255)
        hue_rows = (applied & (op == 3)).nonzero()[:, 0]
        if len(hue_rows):
            idx = hue_rows.to(x.device, non_blocking=True)
            shift = factors[hue_rows, 3].float().to(x.device, non_blocking=True)
            x = x.index_copy(0, idx, shift_hue(x.index_select(0, idx) / 255, shift) * 255)
    return x


def photometric_batch(x: torch.Tensor, rows: Rows, cfg: AugmentConfig) -> torch.Tensor:
    """Flip, colour jitter, grayscale, blur, solarize with per-row parameters, in the order of
    `augment.photometric`; `x` is (N, 3, H, W) float in [0, 255]. Returns integer levels in
    [0, 255] (rounded once, before solarize) as float32."""
    dev = x.device
    if bool(rows.flag(FLIP).any()):
        x = torch.where(rows.values(FLIP, dev) > 0.5, x.flip(-1), x)
    if bool(rows.flag(JITTER).any()):
        x = _jitter(x, rows)
    if bool(rows.flag(GRAY).any()):
        x = torch.where(rows.values(GRAY, dev) > 0.5, luma(x).expand_as(x), x)
    blurred = (rows.table[:, SIGMA] > 0).nonzero()[:, 0]
    if len(blurred):
        idx = blurred.to(dev, non_blocking=True)
        sub = gaussian_blur(x.index_select(0, idx), rows.table[blurred, SIGMA], blur_radius(cfg))
        x = x.index_copy(0, idx, sub)
    x = x.round_().clamp_(0, 255)
    if bool(rows.flag(SOLARIZE).any()):
        invert = (rows.values(SOLARIZE, dev) > 0.5) & (x >= cfg.solarize_threshold)
        x = torch.where(invert, 255 - x, x)
    return x
