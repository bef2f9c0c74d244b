"""What the online kNN monitor costs against training, at its defaults (every 10 epochs, k = 20,
resize 256 / crop 224 as `orl eval knn`), measured on this machine.

    python benchmarks/monitor_cost.py [--steps 6] [--labelled 200]

It trains a ResNet-18 BYOL at the paper's resolution (224 px views) on generated images through
the real loop (`pretrain` without a run folder) to get training seconds per image, times one
monitor pass over a generated labelled set, and prints the monitor's share of training time for
data sets of several sizes: share = monitor seconds / (every_epochs x images per epoch x training
seconds per image).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from orl.config import load_config
from orl.evaluate.monitor import Monitor, MonitorConfig
from orl.models.backbone import build_backbone
from orl.train.config import PretrainConfig
from orl.train.loop import pretrain

# (name, images per epoch, labelled images: monitor train + val)
SETTINGS = (
    ("COCO train2017 (paper), 1,000 + 1,000 labelled", 118_287, 2_000),
    ("scene benchmark size, 2,000 per epoch, 2,000 + 1,000 labelled", 2_000, 3_000),
    ("demo photos (585), 500 + 500 labelled", 585, 1_000),
)


def write_images(folder: Path, n: int, classes: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / f"c{i % classes}" if classes > 1 else folder
        sub.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"{i:05d}.jpg", quality=90)
    return folder


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=6, help="measured training steps")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--labelled", type=int, default=200, help="labelled images timed (train+val)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_images(root / "data", 4 * args.batch)
        half = args.labelled // 2
        train = write_images(root / "train", half, classes=4, seed=1)
        val = write_images(root / "val", args.labelled - half, classes=4, seed=2)
        cfg = load_config(
            PretrainConfig,
            None,
            [
                f"data={data}",
                "epochs=100",
                "arch=resnet18",
                "method=byol",
                f"batch_size={args.batch}",
                "workers=1",
                "augment.image_size=224",
                "augment.patch_size=96",
            ],
        )
        summary = pretrain(cfg, None, max_steps=2 + args.steps, bench_warmup=2)
        train_s = 1.0 / summary.images_per_s
        monitor = Monitor(MonitorConfig(train=str(train), val=str(val)))
        backbone, _ = build_backbone("resnet18")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        monitor.measure(backbone.to(device), device)  # warm-up
        started = time.perf_counter()
        monitor.measure(backbone, device)
        monitor_s = (time.perf_counter() - started) / args.labelled
    every = MonitorConfig().every_epochs
    print(f"training: {train_s:.3f} s per image (BYOL, ResNet-18, 224 px, batch {args.batch})")
    print(f"monitor:  {monitor_s:.4f} s per labelled image (resize 256, crop 224, k 20)")
    for name, images, labelled in SETTINGS:
        share = labelled * monitor_s / (every * images * train_s)
        print(f"  {name}: {100 * share:.2f}% of training time (every {every} epochs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
