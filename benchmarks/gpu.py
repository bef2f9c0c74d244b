"""Training and stage-2 throughput on one GPU at the paper presets, as one table.

    python benchmarks/gpu.py [--budget-s 450] [--work DIR]     # a GPU machine (benchmarks/gpu.sh)
    python benchmarks/gpu.py --smoke --work DIR                 # tiny settings on the CPU

Rows: BYOL, ORL, SimCLR and MoCo v2 from the bundled `coco_*_r50_800ep` presets (ResNet-50, 224 px
views, 96 px patches, bf16 autocast, channels_last) at batch 128 on one GPU; then stage 2 per step
(selective search on every core, image embeddings, kNN, RoI embeddings, pairs) with the PIL and
the gpu RoI backends. Columns: the GPU step alone on synthetic tensors (forward, loss, backward,
optimizer, EMA), the efficiency line (180 TFLOP/s over the method's FLOPs per image), the real
training loop on generated COCO-sized JPEGs with `augment.backend: pil` and `gpu` (images/s and
the share of step time waiting for the loader), and peak GPU memory.

Each measurement runs in its own process under a time limit, and no measurement starts once the
budget is spent; a cell that was not measured says why.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PRESETS = {
    "BYOL": "coco_byol_r50_800ep.yaml",
    "ORL": "coco_orl_r50_800ep.yaml",
    "SimCLR": "coco_simclr_r50_800ep.yaml",
    "MoCo v2": "coco_mocov2_r50_800ep.yaml",
}
# forward GFLOP of ResNet-50 on one 224 px image (2 x 4.1 G multiply-adds); a backward is 2x
R50_GFLOP = 8.2
LINE_TFLOPS = 180.0
TARGETS = {"BYOL": 2000, "ORL": 1500}
PLAN = [
    ("BYOL", "step"),
    ("BYOL", "gpu"),
    ("BYOL", "pil"),
    ("ORL", "step"),
    ("ORL", "gpu"),
    ("ORL", "pil"),
    ("stage 2", "pil"),
    ("stage 2", "gpu"),
    ("SimCLR", "step"),
    ("SimCLR", "gpu"),
    ("SimCLR", "pil"),
    ("MoCo v2", "step"),
    ("MoCo v2", "gpu"),
    ("MoCo v2", "pil"),
    ("BYOL", "step-concat"),
    ("ORL", "step-concat"),
]
LIMITS = {"step": 50, "step-concat": 50, "gpu": 75, "pil": 75, "stage 2": 120}


def gflop_per_image(method: str, patch: float = (96 / 224) ** 2) -> float:
    """Forward + backward of every trained view (3x a forward) plus the target's forwards."""
    if method == "SimCLR":
        return 2 * 3 * R50_GFLOP
    if method == "MoCo v2":
        return 3 * R50_GFLOP + R50_GFLOP
    views = 2 + (4 * patch if method == "ORL" else 0)
    return views * (3 + 1) * R50_GFLOP


# ---------------------------------------------------------------- data, made once per run


def _jpeg(task: tuple[Path, int, tuple[int, int]]) -> None:
    """A COCO-sized photo stand-in: gradients, discs, mild noise (about 60-100 KB at q 90)."""
    path, seed, (w, h) = task
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([rng.uniform(40, 200) + rng.uniform(-90, 90) * (xx - yy) for _ in range(3)], -1)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.75), rng.uniform(0.03, 0.2)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 8, img.shape)
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def make_jpegs(folder: Path, n: int, size: tuple[int, int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(folder / f"{i:05d}.jpg", i, size) for i in range(n)]
    todo = [t for t in todo if not t[0].exists()]
    with Pool(os.cpu_count()) as pool:
        pool.map(_jpeg, todo, chunksize=16)
    return folder


def random_boxes(n: int, per_image: int, size: tuple[int, int], box_min: int) -> list[np.ndarray]:
    """`per_image` xywh boxes of at least `box_min` pixels inside each w x h image."""
    rng = np.random.default_rng(0)
    w, h = size
    out = []
    for _ in range(n):
        bw = rng.integers(box_min, max(box_min + 1, w // 2), per_image)
        bh = rng.integers(box_min, max(box_min + 1, h // 2), per_image)
        x, y = rng.integers(0, w - bw), rng.integers(0, h - bh)
        out.append(np.stack([x, y, bw, bh], 1).astype(np.int32))
    return out


def make_store(images_dir: Path, out: Path, size: tuple[int, int], box_min: int) -> Path:
    """Random boxes, neighbours and pairs on the generated images: stage 3's input shape."""
    from orl.data.sources import resolve_sources
    from orl.discover.store import write_store

    if (out / "meta.json").exists():
        return out
    images = resolve_sources([str(images_dir)])
    n, k, per_image = len(images), 10, 24
    rng = np.random.default_rng(1)
    neighbours = np.array([(i + 1 + rng.permutation(n - 1)[:k]) % n for i in range(n)])
    pairs = [[rng.integers(0, per_image, (2, 2)) for _ in range(k)] for _ in range(n)]
    boxes = random_boxes(n, per_image, size, box_min)
    write_store(out, boxes, neighbours, pairs, {"fingerprint": images.fingerprint})
    return out


def make_checkpoint(path: Path, arch: str) -> Path:
    """A randomly initialised BYOL checkpoint in `orl pretrain`'s format, for stage 2."""
    import torch

    from orl.checkpoint import FORMAT, VERSION, atomic_save
    from orl.models.byol import Encoder, OnlineNetwork

    if path.exists():
        return path
    torch.manual_seed(0)
    online = OnlineNetwork(Encoder(arch, 4096, 256), ["image"], 4096)
    config = {"arch": arch, "method": "byol", "model": {"proj_hidden": 4096, "proj_dim": 256}}
    atomic_save(
        {"format": FORMAT, "version": VERSION, "config": config, "online": online.state_dict()},
        path,
    )
    return path


# ---------------------------------------------------------------- one measurement per process


def _config(method: str, smoke: bool, extra: list[str]) -> Any:
    from orl.config import load_config
    from orl.train.config import PretrainConfig

    settings = ["batch_size=128", "epochs=100", "log_every=1000", "workers=15", *extra]
    if smoke:
        settings += ["arch=resnet18", "batch_size=8", "workers=2", "device=cpu"]
        settings += ["augment.image_size=32", "augment.patch_size=16"]
        settings += ["model.proj_hidden=32", "model.pred_hidden=32", "contrastive.queue_size=64"]
    return load_config(PretrainConfig, Path(PRESETS[method]), settings)  # a bundled preset


def _peak_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else math.nan


def _data(method: str, work: Path) -> list[str]:
    """The generated JPEGs, and for ORL the generated correspondence store."""
    settings = [f"data={work / 'jpegs'}"]
    return [*settings, f"orl.corr={work / 'store'}"] if method == "ORL" else settings


def measure_step(method: str, work: Path, smoke: bool, concat: bool) -> dict[str, float]:
    """The training step alone (`train/loop.py: train_step`: forward, loss, backward, optimizer,
    EMA) on synthetic uint8 views already on the device: what the GPU sustains without a loader."""
    import torch

    from orl.data.views import Batch
    from orl.train.loop import train_step
    from orl.train.run import build_run

    extra = ["model.concat_views=true", "model.sync_bn=false"] if concat else []
    cfg = _config(method, smoke, [*_data(method, work), *extra])
    run = build_run(cfg)
    b, a, device = cfg.batch_size, cfg.augment, run.dist.device
    views = {
        name: [
            torch.randint(0, 256, (b, 3, s, s), device=device, dtype=torch.uint8) for _ in range(2)
        ]
        for name, s in (
            (n, a.image_size if n == "image" else a.patch_size) for n in run.parts.branches
        )
    }
    batch = Batch(torch.arange(b), views, [])
    warmup, steps = (1, 2) if smoke else (8, 20)
    for i in range(warmup):
        train_step(run, batch, i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        train_step(run, batch, i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"images_per_s": steps * b / seconds, "peak_gib": _peak_gib()}


def measure_loop(method: str, backend: str, work: Path, smoke: bool) -> dict[str, float]:
    """The real training loop (`orl bench train`) on the generated JPEGs."""
    from orl.train.loop import pretrain

    cfg = _config(method, smoke, [*_data(method, work), f"augment.backend={backend}"])
    warmup, steps = (1, 2) if smoke else (6, 24)
    summary = pretrain(cfg, None, max_steps=warmup + steps, bench_warmup=warmup)
    return {
        "images_per_s": summary.images_per_s,
        "data_wait": summary.data_wait_fraction,
        "peak_gib": _peak_gib(),
    }


def measure_stage2(backend: str, work: Path, smoke: bool) -> dict[str, float]:
    """`orl discover` on the generated JPEGs; images/s of each step (proposals: first run)."""
    import shutil

    import cv2

    from orl.discover.config import DiscoverConfig
    from orl.discover.pipeline import discover

    data = work / ("stage2_small" if smoke else "stage2")
    settings: dict[str, Any] = {"roi_backend": backend, "proposal_cache": str(work / "proposals")}
    if not hasattr(cv2, "ximgproc"):  # no opencv-contrib: the store's boxes stand in
        settings.update(boxes="file", proposal_file=str(work / "boxes"))
    if smoke:
        settings.update(k=3, knn_resize=40, knn_crop=32, roi_size=32, min_size=16)
        settings.update(ss_max_side=64, batch_size=16, device="cpu")
    arch = "resnet18" if smoke else "resnet50"
    ckpt = make_checkpoint(work / f"{arch}.pt", arch)
    out = work / f"stage2-{backend}"
    shutil.rmtree(out, ignore_errors=True)
    discover(DiscoverConfig(**settings), ckpt, [str(data)], out, resume=False)
    t = json.loads((out / "timings.json").read_text())
    steps = ("proposals_s", "image_embed_s", "knn_s", "roi_embed_s", "pairs_s")
    result = {k.removesuffix("_s"): t["images"] / t[k] for k in steps if t.get(k)}
    if not t.get("proposal_images"):  # read from the first run's cache, or boxes from a file
        result.pop("proposals", None)
    result["peak_gib"] = _peak_gib()
    return result


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    if args.method == "stage 2":
        result = measure_stage2(args.kind, work, args.smoke)
    elif args.kind.startswith("step"):
        result = measure_step(args.method, work, args.smoke, args.kind == "step-concat")
    else:
        result = measure_loop(args.method, args.kind, work, args.smoke)
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------- the run and its table


def run_one(method: str, kind: str, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--method", method, "--kind", kind]
    cmd += ["--work", args.work] + (["--smoke"] if args.smoke else [])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        return {"error": f"over its {seconds:.0f} s limit"}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:120]}"}
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    result["seconds"] = time.perf_counter() - t0
    return result


def _cell(r: dict[str, Any] | None, key: str = "images_per_s", wait: bool = False) -> str:
    if r is None:
        return "not run (budget)"
    if "error" in r:
        return str(r["error"])
    text = f"{r[key]:,.0f}"
    if wait:
        text += f" ({100 * r['data_wait']:.0f}% wait)"
    return text


def table(results: dict[tuple[str, str], dict[str, Any]]) -> str:
    rows = [
        "| method | GPU step only (img/s) | 180 TFLOP/s line | end to end, PIL path "
        "| end to end, GPU path | peak GPU memory | target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method in PRESETS:
        step = results.get((method, "step"))
        line = LINE_TFLOPS * 1e3 / gflop_per_image(method)
        concat = results.get((method, "step-concat"))
        step_text = _cell(step)
        if concat and "error" not in concat:
            step_text += f" ({concat['images_per_s']:,.0f} concat views)"
        peaks = [r.get("peak_gib", math.nan) for k, r in results.items() if k[0] == method]
        peak = max((p for p in peaks if not math.isnan(p)), default=math.nan)
        target = f">= {TARGETS[method]:,} end to end" if method in TARGETS else "-"
        peak_text = "-" if math.isnan(peak) else f"{peak:.1f} GiB"
        rows.append(
            f"| {method} | {step_text} | {line:,.0f} (1.5x: {line / 1.5:,.0f}) "
            f"| {_cell(results.get((method, 'pil')), wait=True)} "
            f"| {_cell(results.get((method, 'gpu')), wait=True)} | {peak_text} | {target} |"
        )
    rows += ["", "| stage 2 step (images/s) | PIL RoI warp | GPU RoI warp |", "| --- | --- | --- |"]
    pil, gpu = results.get(("stage 2", "pil")), results.get(("stage 2", "gpu"))
    for step in ("proposals", "image_embed", "knn", "roi_embed", "pairs"):
        cells = []
        for r in (pil, gpu):
            if r is None or "error" in r:
                cells.append(_cell(r))
            else:
                cells.append(f"{r[step]:,.1f}" if step in r else "not run (cached or file)")
        rows.append(f"| {step} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def prepare(work: Path, smoke: bool) -> None:
    """JPEGs, a correspondence store for ORL, and a subset with box files for stage 2."""
    import shutil

    from orl.data.sources import resolve_sources
    from orl.discover.proposals import write_proposal_file

    n, size, box_min = (24, (96, 72), 16) if smoke else (1024, (640, 480), 96)
    make_jpegs(work / "jpegs", n, size)
    make_store(work / "jpegs", work / "store", size, box_min)
    stage2 = work / ("stage2_small" if smoke else "stage2")
    if not stage2.exists():  # a subset: selective search is the slow step
        stage2.mkdir(parents=True)
        for path in sorted((work / "jpegs").iterdir())[: 12 if smoke else 128]:
            shutil.copy(path, stage2 / path.name)
    if not (work / "boxes").exists():  # stand-in proposals where opencv-contrib is missing
        images = resolve_sources([str(stage2)])
        write_proposal_file(random_boxes(len(images), 150, size, 8), images, work / "boxes")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/orl-gpu-bench", help="generated data and outputs")
    p.add_argument("--budget-s", type=float, default=450.0, help="stop starting measurements then")
    p.add_argument("--smoke", action="store_true", help="tiny settings on the CPU")
    p.add_argument("--only", nargs="*", help="measure these methods only (e.g. BYOL 'stage 2')")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    deadline = time.perf_counter() + args.budget_s
    work = Path(args.work)
    prepare(work, args.smoke)
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for method, kind in PLAN:
        if args.only and method not in args.only:
            continue
        left = deadline - time.perf_counter()
        if left < 20:
            continue
        limit = LIMITS["stage 2" if method == "stage 2" else kind] * (3 if args.smoke else 1)
        results[(method, kind)] = run_one(method, kind, args, min(limit, left))
        print(f"{method:8s} {kind:12s} {json.dumps(results[(method, kind)])}", flush=True)
    text = table(results)
    print("\n" + text)
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "gpu_bench.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
