"""The gpu backend's draws and batched ops against the PIL pipeline (`augment.py`) on the CPU.

The draws mirror the PIL pipeline's use of the random generator, so the same seed gives the same
parameters: checked exactly for the crop, and sample by sample on the pixels. The parameter
distributions are then checked against the paper's probabilities and ranges, the batched ops
against torchvision's single-image ops, and the output statistics of the two backends against
each other on independent seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from scipy.stats import ks_2samp
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from orl.augment import AugmentConfig, global_view
from orl.augment_tensor import (
    BOX,
    FACTORS,
    FLIP,
    GRAY,
    JITTER,
    ORDER,
    ROW,
    SIGMA,
    SOLARIZE,
    Rows,
    crop_resize,
    draw_crop,
    draw_global_view,
    gaussian_blur,
    photometric_batch,
    shift_hue,
    view_row,
)

CFG = AugmentConfig(image_size=48)


def scene(seed: int, size: tuple[int, int] = (80, 64)) -> Image.Image:
    """A photo-like test image: smooth colour gradients, a few discs, mild noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([rng.uniform(40, 200) + rng.uniform(-80, 80) * (xx + yy) for _ in range(3)], -1)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8))


def as_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)


def tensor_view(img: Image.Image, row: torch.Tensor, cfg: AugmentConfig = CFG) -> torch.Tensor:
    rows = Rows(row[None])
    return photometric_batch(crop_resize([as_tensor(img)], rows), rows, cfg)[0]


def draws(cfg: AugmentConfig, view: int, n: int, size: tuple[int, int] = (400, 300)) -> Rows:
    torch.manual_seed(view)
    return Rows(torch.stack([draw_global_view(cfg, view, *size) for _ in range(n)]))


@pytest.mark.parametrize("size", [(64, 48), (500, 120), (30, 300), (7, 5)])
def test_crop_draws_equal_torchvision_random_resized_crop(size: tuple[int, int]) -> None:
    w, h = size
    rrc = v2.RandomResizedCrop(32, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    for seed in range(200):
        torch.manual_seed(seed)
        left, top, right, bottom = draw_crop(w, h, (0.08, 1.0))
        torch.manual_seed(seed)
        p = rrc.make_params([torch.empty(3, h, w)])
        assert (left, top, right - left, bottom - top) == (
            p["left"],
            p["top"],
            p["width"],
            p["height"],
        )


def test_same_seed_same_view_as_the_pil_pipeline_sample_by_sample() -> None:
    """Every parameter drawn equal: the two backends' views differ by resampling noise only."""
    img = scene(0)
    same, other = [], []
    for view in (1, 2):
        for seed in range(60):
            torch.manual_seed(seed)
            ref = global_view(CFG, view)(img).float()
            torch.manual_seed(seed)
            row = draw_global_view(CFG, view, *img.size)
            same.append((tensor_view(img, row) - ref).abs().mean().item())
            torch.manual_seed(seed + 1000)
            row = draw_global_view(CFG, view, *img.size)
            other.append((tensor_view(img, row) - ref).abs().mean().item())
    assert max(same) < 3.0, max(same)
    assert float(np.median(other)) > 10 * float(np.median(same))  # the comparison can tell


def _rate(flags: torch.Tensor) -> float:
    return float(flags.double().mean())


def _near(rate: float, p: float, n: int) -> bool:
    return abs(rate - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-9


def test_parameter_distributions_are_the_papers() -> None:
    n = 4000
    v1, v2_ = draws(CFG, 1, n), draws(CFG, 2, n)
    # the PIL pipeline's crops, on other seeds
    rrc = v2.RandomResizedCrop(48, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    torch.manual_seed(99)
    ref = [rrc.make_params([torch.empty(3, 300, 400)]) for _ in range(n)]
    ref_area = np.array([p["width"] * p["height"] / (400 * 300) for p in ref])
    ref_aspect = np.log([p["width"] / p["height"] for p in ref])
    for rows in (v1, v2_):
        box = rows.table[:, BOX]
        w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        area, log_aspect = (w * h / (400 * 300)).numpy(), np.log((w / h).numpy())
        assert area.min() >= 0.07 and area.max() <= 1.0
        assert abs(log_aspect).max() < math.log(4 / 3) + 0.02
        assert ks_2samp(area, ref_area).pvalue > 1e-3
        assert ks_2samp(log_aspect, ref_aspect).pvalue > 1e-3
        assert _near(_rate(rows.flag(FLIP)), 0.5, n)
        assert _near(_rate(rows.flag(JITTER)), 0.8, n)
        assert _near(_rate(rows.flag(GRAY)), 0.2, n)
        jittered = rows.table[rows.flag(JITTER)]
        order = jittered[:, ORDER].long()
        assert (order.sort(1).values == torch.arange(4)).all()  # a permutation every time
        for k in range(4):  # each operation first in a quarter of the jittered views
            assert _near(_rate(order[:, 0] == k), 0.25, len(order))
        f = jittered[:, FACTORS]
        for col, (lo, hi) in enumerate([(0.6, 1.4), (0.6, 1.4), (0.8, 1.2), (-0.1, 0.1)]):
            assert lo <= f[:, col].min() and f[:, col].max() <= hi
            assert abs(f[:, col].mean().item() - (lo + hi) / 2) < 0.02
    blur1, blur2 = v1.table[:, SIGMA] > 0, v2_.table[:, SIGMA] > 0
    assert _rate(blur1) == 1.0 and _near(_rate(blur2), 0.1, n)
    sigma = v1.table[:, SIGMA].numpy()
    assert ks_2samp(sigma, np.random.default_rng(1).uniform(0.1, 2.0, n)).pvalue > 1e-3
    assert _rate(v1.flag(SOLARIZE)) == 0.0 and _near(_rate(v2_.flag(SOLARIZE)), 0.2, n)


def _stats(x: torch.Tensor) -> tuple[float, float, float]:
    """Brightness, contrast and colourfulness of one view."""
    return x.mean().item(), x.std().item(), (x - x.mean(0)).abs().mean().item()


@pytest.mark.parametrize("view", [1, 2])
def test_output_statistics_match_the_pil_backend_on_independent_seeds(view: int) -> None:
    img = scene(1)
    pil, tensor = [], []
    for seed in range(150):
        torch.manual_seed(seed)
        pil.append(_stats(global_view(CFG, view)(img).float()))
        torch.manual_seed(10_000 + seed)
        tensor.append(_stats(tensor_view(img, draw_global_view(CFG, view, *img.size))))
    for k in range(3):
        assert ks_2samp([s[k] for s in pil], [s[k] for s in tensor]).pvalue > 1e-3, k


def _row(**cols: object) -> torch.Tensor:
    """A parameter row for a 32 x 32 image: whole image, no augmentation, then `cols`."""
    row = view_row((0, 0, 32, 32), [0.0, 0.0, 0, 1, 2, 3, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0], 32)
    for name, value in cols.items():
        col = {"flip": FLIP, "jitter": JITTER, "gray": GRAY, "sigma": SIGMA, "solarize": SOLARIZE}
        if name == "order":
            row[ORDER] = torch.tensor(value)
        elif name == "factors":
            row[FACTORS] = torch.tensor(value)
        else:
            row[col[name]] = float(value)  # type: ignore[arg-type]
    return row


def test_no_augmentation_row_returns_the_image() -> None:
    img = as_tensor(scene(2, (32, 32)))
    rows = Rows(_row()[None])
    assert torch.equal(photometric_batch(crop_resize([img], rows), rows, CFG)[0], img.float())
    assert len(_row()) == ROW


def test_jitter_applies_each_rows_order_and_factors_like_torchvision() -> None:
    img = as_tensor(scene(3, (32, 32))).float() / 255
    orders = [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]]
    factors = [[1.3, 0.7, 1.2, 0.05], [0.6, 1.4, 0.8, -0.1], [1.1, 0.9, 1.0, 0.08]]
    rows = Rows(
        torch.stack(
            [_row(jitter=1, order=o, factors=f) for o, f in zip(orders, factors, strict=True)]
        )
    )
    got = photometric_batch(img.expand(3, -1, -1, -1) * 255, rows, CFG)
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(3):
        expected = img
        for op in orders[i]:
            expected = ops[op](expected, factors[i][op])
        # torchvision weighs gray 0.2989 R (PIL: 0.299) and its output is not rounded: <= 1 level
        assert (got[i] - expected * 255).abs().max() <= 1.0


def test_hue_rotation_equals_torchvision_per_image() -> None:
    x = torch.rand(5, 3, 9, 7)
    shift = torch.tensor([0.1, -0.3, 0.5, 0.0, -0.5])
    expected = torch.stack([TF.adjust_hue(x[i], float(shift[i])) for i in range(5)])
    torch.testing.assert_close(shift_hue(x, shift), expected, atol=1e-5, rtol=0)


def test_blur_is_a_gaussian_with_each_rows_sigma() -> None:
    x = torch.rand(3, 3, 40, 40) * 255
    sigma = torch.tensor([0.5, 1.0, 2.0])
    got = gaussian_blur(x, sigma, radius=6)
    for i, s in enumerate(sigma.tolist()):
        ref = TF.gaussian_blur(x[i], kernel_size=[13, 13], sigma=[s, s])
        # torchvision reflects at the edges, PIL and we replicate: compare the interior
        torch.testing.assert_close(got[i, :, 6:-6, 6:-6], ref[:, 6:-6, 6:-6], atol=1e-3, rtol=0)


def test_flip_grayscale_and_solarize_follow_their_rows() -> None:
    img = as_tensor(scene(4, (32, 32)))
    table = torch.stack([_row(flip=1), _row(gray=1), _row(solarize=1), _row()])
    rows = Rows(table)
    out = photometric_batch(crop_resize([img] * 1, Rows(table)), rows, CFG)
    assert torch.equal(out[0], img.float().flip(-1))
    pil_gray = as_tensor(Image.fromarray(img.permute(1, 2, 0).numpy()).convert("L").convert("RGB"))
    assert (out[1] - pil_gray.float()).abs().max() <= 1.0
    expected = torch.where(img >= 128, 255 - img, img).float()
    assert torch.equal(out[2], expected)
    assert torch.equal(out[3], img.float())


def test_pixel_differences_to_pil_stay_within_the_documented_bounds() -> None:
    """The figures of docs/design.md: resize and blur against PIL's, mean and max |difference|."""
    img = scene(5, (160, 120))
    t = as_tensor(img)
    resize, blur = [], []
    torch.manual_seed(0)
    for _ in range(40):
        rect = draw_crop(160, 120, (0.08, 1.0))
        ref = as_tensor(img.crop(rect).resize((48, 48), Image.Resampling.BILINEAR)).float()
        got = crop_resize([t], Rows(view_row(rect, [0.0] * 13, 48)[None]))[0].round()
        resize.append((got - ref).abs())
        sigma = float(torch.empty(()).uniform_(0.1, 2.0))
        ref = as_tensor(img.filter(ImageFilter.GaussianBlur(radius=sigma))).float()
        got = gaussian_blur(t.float()[None], torch.tensor([sigma]), 6)[0].round()
        blur.append((got - ref).abs())
    assert torch.stack(resize).mean() < 0.3 and torch.stack(resize).max() <= 2
    assert torch.stack(blur).mean() < 1.5 and torch.stack(blur).max() <= 40
