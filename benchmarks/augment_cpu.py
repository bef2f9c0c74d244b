"""How far the gpu backend's pixels are from the PIL pipeline's, and both backends' CPU cost.

    python benchmarks/augment_cpu.py PHOTO_DIR [--images 60]

On real photos: mean and largest |difference| in 8-bit levels of each kernel that differs
(antialiased bilinear resize, Gaussian blur, colour jitter) and of whole views drawn from the
same seeds; then images per second of one CPU thread for decoding and for making two 224 px
views on each backend. The figures of docs/design.md come from this script.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from orl.augment import AugmentConfig, global_view, photometric
from orl.augment_tensor import (
    Rows,
    crop_resize,
    draw_crop,
    draw_global_view,
    draw_photometric,
    gaussian_blur,
    photometric_batch,
    view_row,
)
from orl.data.encoded import decode_images, load_encoded
from orl.data.sources import ImageList, resolve_sources

CPU = torch.device("cpu")


def levels(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float()


def report(name: str, diffs: list[torch.Tensor]) -> None:
    d = torch.cat([x.flatten() for x in diffs])
    print(f"| {name} | {d.mean():.2f} | {np.percentile(d.numpy(), 99):.0f} | {d.max():.0f} |")


def pixel_differences(photos: list[Image.Image], cfg: AugmentConfig) -> None:
    print("| kernel | mean abs diff | 99th pct | max |\n| --- | --- | --- | --- |")
    resize, blur, jitter, views = [], [], [], {1: [], 2: []}  # type: ignore[var-annotated]
    only_jitter = AugmentConfig(flip_p=0, jitter_p=1, grayscale_p=0, view1_blur_p=0)
    for k, img in enumerate(photos):
        t = levels(img)
        torch.manual_seed(k)
        rect = draw_crop(*img.size, (0.08, 1.0))
        ref = levels(img.crop(rect).resize((224, 224), Image.Resampling.BILINEAR))
        got = crop_resize([t], Rows(view_row(rect, [0.0] * 13, 224)[None]))[0].round()
        resize.append((got - ref).abs())
        sigma = float(torch.empty(()).uniform_(0.1, 2.0))
        ref = levels(
            Image.fromarray(ref.permute(1, 2, 0).byte().numpy()).filter(
                ImageFilter.GaussianBlur(sigma)
            )
        )
        got = gaussian_blur(got[None], torch.tensor([sigma]), 6)[0].round()
        blur.append((got - ref).abs())
        torch.manual_seed(k)
        patch = img.resize((96, 96))
        ref = levels(Image.fromarray(photometric(only_jitter, 1)(patch).permute(1, 2, 0).numpy()))
        torch.manual_seed(k)
        row = view_row((0, 0, 96, 96), draw_photometric(only_jitter, 1), 96)
        got = photometric_batch(levels(patch)[None], Rows(row[None]), only_jitter)[0]
        jitter.append((got - ref).abs())
        for view in (1, 2):
            torch.manual_seed(k)
            ref = global_view(cfg, view)(img).float()
            torch.manual_seed(k)
            row = draw_global_view(cfg, view, *img.size)
            got = photometric_batch(crop_resize([t], Rows(row[None])), Rows(row[None]), cfg)[0]
            views[view].append((got - ref).abs())
    report("random resized crop to 224 (antialiased bilinear vs PIL BILINEAR)", resize)
    report("Gaussian blur, sigma U(0.1, 2) (sampled, 13 taps vs PIL's box passes)", blur)
    report("colour jitter, random order (float vs PIL's 8-bit steps)", jitter)
    report("whole view 1, same seeds", views[1])
    report("whole view 2, same seeds", views[2])


def cpu_throughput(photos: ImageList, ids: list[int], cfg: AugmentConfig) -> None:
    print("\n| one CPU thread | images/s |\n| --- | --- |")
    paths = [photos.path(i) for i in ids]
    t0 = time.perf_counter()
    decoded = [Image.open(p).convert("RGB") for p in paths]
    print(f"| PIL decode | {len(paths) / (time.perf_counter() - t0):.0f} |")
    t0 = time.perf_counter()
    encoded = [load_encoded(photos, i, None) for i in ids]
    images = decode_images(encoded, CPU, [])
    print(f"| torchvision decode_jpeg | {len(paths) / (time.perf_counter() - t0):.0f} |")
    plain = [i for i, e in zip(ids, encoded, strict=True) if e.pixels is None]
    t0 = time.perf_counter()
    for i in plain:
        load_encoded(photos, i, None)
    rate = len(plain) / (time.perf_counter() - t0)
    print(f"| gpu backend, worker: file bytes and header ({len(plain)} plain JPEGs) | {rate:.0f} |")
    views = (global_view(cfg, 1), global_view(cfg, 2))
    t0 = time.perf_counter()
    for img in decoded:
        views[0](img), views[1](img)
    print(f"| PIL backend: two 224 px views | {len(paths) / (time.perf_counter() - t0):.0f} |")
    t0 = time.perf_counter()
    rows = Rows(
        torch.cat(
            [torch.stack([draw_global_view(cfg, v, *im.size) for im in encoded]) for v in (1, 2)]
        )
    )
    t1 = time.perf_counter()
    table = rows.table.clone()
    table[:, 0] = torch.arange(len(encoded)).repeat(2).double()
    rows = Rows(table)
    photometric_batch(crop_resize(images, rows), rows, cfg)
    t2 = time.perf_counter()
    print(f"| gpu backend, worker: parameter draws of two views | {len(paths) / (t1 - t0):.0f} |")
    print(f"| gpu backend on the CPU: two 224 px views, batched | {len(paths) / (t2 - t1):.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", type=Path)
    p.add_argument("--images", type=int, default=60)
    args = p.parse_args()
    torch.set_num_threads(1)
    photos = resolve_sources([args.photos])
    ids = [i for i in range(len(photos)) if photos.relpath(i).endswith(".jpg")][: args.images]
    cfg = AugmentConfig()
    pixel_differences([Image.open(photos.path(i)).convert("RGB") for i in ids], cfg)
    cpu_throughput(photos, ids, cfg)


if __name__ == "__main__":
    main()
