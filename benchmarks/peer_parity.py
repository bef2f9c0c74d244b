"""Peer parity: orl's BYOL against BYOL built from lightly's blocks, at identical settings.

    python benchmarks/peer_parity.py --config configs/scenes_train.yaml --scenes SCENES \\
        --seeds 0 1 2 --out work/peer-parity [--set key=value ...] [--threads N]

Both sides read one pre-training preset (`PretrainConfig`; `data` defaults to the train split of
`--scenes`) and train for each seed; both backbones are scored by `orl eval scenes` on the scene
benchmark. orl trains through its CLI (`python -m orl pretrain`, then `orl export --format
torchvision`); the lightly side is the plain loop below: lightly's BYOL transforms, projection and
prediction heads, `NegativeCosineSimilarity`, `update_momentum` and `cosine_schedule`, with orl's
backbone builder and data list. Writes OUT/<impl>/seed<S>/eval.json, OUT/summary.json
({impl: {protocol: {mean, std, n}}}, percent, sample std) and OUT/summary.md. Run the same command
again to continue: finished (impl, seed) units are skipped. Needs `pip install 'orl[bench]'`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform
from lightly.utils.scheduler import cosine_schedule
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from orl.artifacts import atomic_open, atomic_write_text
from orl.augment import AugmentConfig
from orl.config import ConfigError, load_config, to_dict
from orl.data.decode import load_rgb
from orl.data.sources import ImageList, resolve_sources
from orl.evaluate.inputs import EvalInputError
from orl.evaluate.scene_data import annotation_file
from orl.train.config import PretrainConfig
from orl.train.supervised import preset_backbone

IMPLS = ("orl", "lightly")


def lightly_transform(aug: AugmentConfig) -> BYOLTransform:
    """lightly's two BYOL views configured to the preset's augmentation settings.

    lightly's crop scale ends at 1 and its solarize threshold is 128, as orl's defaults; a preset
    that changes either cannot be expressed with lightly's transforms and is refused.
    """
    if aug.max_scale != 1.0 or aug.solarize_threshold != 128:
        raise ConfigError("augment.max_scale and augment.solarize_threshold: lightly fixes 1, 128")
    common: dict[str, Any] = {
        "input_size": aug.image_size, "cj_prob": aug.jitter_p, "cj_strength": 1.0,
        "cj_bright": aug.brightness, "cj_contrast": aug.contrast, "cj_sat": aug.saturation,
        "cj_hue": aug.hue, "min_scale": aug.min_scale, "random_gray_scale": aug.grayscale_p,
        "sigmas": (aug.blur_sigma_min, aug.blur_sigma_max), "hf_prob": aug.flip_p,
    }  # fmt: skip
    return BYOLTransform(
        BYOLView1Transform(
            **common, gaussian_blur=aug.view1_blur_p, solarization_prob=aug.view1_solarize_p
        ),
        BYOLView2Transform(
            **common, gaussian_blur=aug.view2_blur_p, solarization_prob=aug.view2_solarize_p
        ),
    )


def lightly_lr(cfg: PretrainConfig, steps_per_epoch: int) -> np.ndarray:
    """Per-step lr: peak `lr x batch / 256`, cosine to 0, linear warm-up from `warmup_ratio`.

    Written out rather than with lightly's `cosine_schedule`, which evaluates cos(pi s / K) as
    (pi s) / K where orl's schedule takes pi (s / K): the two differ in the last bit at about one
    step in five. These are orl's numbers exactly.
    """
    o = cfg.optim
    total = steps_per_epoch * cfg.epochs
    warmup = round(o.warmup_epochs * steps_per_epoch)
    out = np.empty(total)
    for s in range(total):
        at = (s // steps_per_epoch) * steps_per_epoch if o.cosine_per_epoch else s
        lr = o.lr * cfg.batch_size / 256 * 0.5 * (1.0 + math.cos(math.pi * (at / total)))
        if warmup > 0:
            lr *= 1.0 - (1.0 - min(s / warmup, 1.0)) * (1.0 - o.warmup_ratio)
        out[s] = lr
    return out


def lightly_tau(cfg: PretrainConfig, total: int) -> np.ndarray:
    """EMA momentum from `model.tau` at step 0 towards `model.tau_end` (1 for BYOL) at step
    `total` (lightly's cosine)."""
    end = 1.0 if cfg.model.tau_end is None else cfg.model.tau_end
    # cosine_schedule ends at max_steps - 1: one more step puts the end at `total`, as orl's.
    return np.array([cosine_schedule(s, total + 1, cfg.model.tau, end) for s in range(total)])


def lightly_loss(
    criterion: NegativeCosineSimilarity,
    p0: torch.Tensor,
    p1: torch.Tensor,
    z0: torch.Tensor,
    z1: torch.Tensor,
) -> torch.Tensor:
    """The authors' scale: the sum of both directions of 2 - 2 cos (lightly's criterion is -cos)."""
    return (2 + 2 * criterion(p0.float(), z1.float())) + (2 + 2 * criterion(p1.float(), z0.float()))


class LightlyBYOL(nn.Module):
    """lightly's BYOL module (its example code) around orl's backbone."""

    def __init__(self, cfg: PretrainConfig) -> None:
        super().__init__()
        m = cfg.model
        self.backbone, width = preset_backbone(cfg)
        self.projection_head = BYOLProjectionHead(width, m.proj_hidden, m.proj_dim)
        self.prediction_head = BYOLPredictionHead(m.proj_dim, m.pred_hidden, m.proj_dim)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x)))  # type: ignore[no-any-return]

    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.projection_head_momentum(self.backbone_momentum(x)).detach()  # type: ignore[no-any-return]

    def online_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone.parameters(), *self.projection_head.parameters(),
                *self.prediction_head.parameters()]  # fmt: skip


class ImageListDataset(Dataset[list[torch.Tensor]]):
    """orl's image list (same files, same decoding), lightly's two views per image."""

    def __init__(self, images: ImageList, transform: BYOLTransform, max_side: int | None) -> None:
        self.images, self.transform, self.max_side = images, transform, max_side

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> list[torch.Tensor]:
        image: Image.Image = load_rgb(self.images.path(index), self.max_side)
        return self.transform(image)  # type: ignore[no-any-return]


def _device_and_amp(cfg: PretrainConfig) -> tuple[torch.device, torch.dtype | None]:
    """orl's choices: CUDA when present for `auto`, bf16 autocast on GPU for `precision: auto`."""
    cuda = torch.cuda.is_available() if cfg.device == "auto" else cfg.device == "cuda"
    device = torch.device("cuda" if cuda else "cpu")
    mode = cfg.precision if cfg.precision != "auto" else ("bf16" if cuda else "fp32")
    return device, {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def lightly_step(
    model: LightlyBYOL,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    views: tuple[torch.Tensor, torch.Tensor],
    lr: float,
    tau: float,
    cfg: PretrainConfig,
) -> float:
    """One step of lightly's BYOL example, with orl's lr, tau, clipping and loss scale."""
    x0, x1 = views
    for group in optimizer.param_groups:
        group["lr"] = lr
    amp_dtype = _device_and_amp(cfg)[1]
    with torch.autocast(x0.device.type, amp_dtype or torch.float32, amp_dtype is not None):
        p0, p1 = model(x0), model(x1)
        z0, z1 = model.forward_momentum(x0), model.forward_momentum(x1)
        loss = lightly_loss(NegativeCosineSimilarity(), p0, p1, z0, z1)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if cfg.optim.clip_grad > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.online_parameters(), cfg.optim.clip_grad)
    scaler.step(optimizer)
    scaler.update()
    update_momentum(model.backbone, model.backbone_momentum, tau)
    update_momentum(model.projection_head, model.projection_head_momentum, tau)
    return float(loss.item())


def train_lightly(cfg: PretrainConfig, out: Path) -> dict[str, Any]:
    """Train BYOL from lightly's blocks; save the backbone as a torchvision state dict."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)  # lightly's blur and solarize draw from NumPy
    random.seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    device, amp_dtype = _device_and_amp(cfg)
    dataset = ImageListDataset(
        resolve_sources(cfg.data), lightly_transform(cfg.augment), cfg.max_side
    )
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed),
                        pin_memory=device.type == "cuda")  # fmt: skip
    steps_per_epoch = len(loader)
    lrs, taus = lightly_lr(cfg, steps_per_epoch), lightly_tau(cfg, steps_per_epoch * cfg.epochs)
    model = LightlyBYOL(cfg).to(device).train()  # the momentum network in train mode, as orl's
    memory = torch.contiguous_format
    if cfg.channels_last and device.type == "cuda":
        memory = torch.channels_last
        model = model.to(memory_format=memory)  # type: ignore[call-overload]
    optimizer = torch.optim.SGD(model.online_parameters(), lr=0.0, momentum=cfg.optim.momentum,
                                weight_decay=cfg.optim.weight_decay)  # fmt: skip
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    step, loss, t0 = 0, math.nan, time.perf_counter()
    with tqdm(total=len(lrs), desc=f"lightly seed {cfg.seed}") as bar:
        for _ in range(cfg.epochs):
            for x0, x1 in loader:
                views = tuple(
                    x.to(device, non_blocking=True).contiguous(memory_format=memory)
                    for x in (x0, x1)
                )
                loss = lightly_step(
                    model, optimizer, scaler, views, float(lrs[step]), float(taus[step]), cfg
                )
                step += 1
                bar.set_postfix(loss=f"{loss:.4f}")
                bar.update()
    state = {k: v.detach().cpu().contiguous() for k, v in model.backbone.state_dict().items()}
    with atomic_open(out / "backbone.pth") as f:
        torch.save(state, f)
    return {"steps": step, "images_seen": step * cfg.batch_size, "final_loss": loss,
            "wall_time_s": time.perf_counter() - t0}  # fmt: skip


def _orl(args: Sequence[str], threads: int | None) -> None:
    """`python -m orl ARGS` in a child process (same interpreter and PYTHONPATH): pre-training
    sets process-wide state (seeds, deterministic algorithms, data-loader workers)."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    code = subprocess.run([sys.executable, "-m", "orl", *args], env=env, check=False).returncode
    if code:
        raise RuntimeError(f"`orl {args[0]}` failed (exit code {code}), see above")


def _orl_here(args: Sequence[str]) -> None:
    """`orl ARGS` in this process (export, evaluation: no process-wide state, no start-up)."""
    from orl.cli import main as orl_main

    code = orl_main(list(args))
    if code:
        raise RuntimeError(f"`orl {' '.join(args[:2])}` failed (exit code {code}), see above")


def train_orl(overrides: Sequence[str], config: Path, folder: Path, threads: int | None) -> None:
    """`orl pretrain` (resumed if interrupted), then its online backbone as a torchvision file."""
    sets = [f"--set={item}" for item in overrides]
    _orl(["pretrain", "--config", str(config), *sets, "--out", str(folder / "run"), "--resume"],
         threads)  # fmt: skip
    checkpoint = folder / "run" / "checkpoints" / "last.pt"
    _orl_here(["export", "--checkpoint", str(checkpoint), "--format", "torchvision", "--out",
               str(folder / "backbone.pth")])  # fmt: skip


def evaluate(args: argparse.Namespace, folder: Path, seed: int) -> None:
    """`orl eval scenes` of the unit's backbone; eval.json marks the unit finished."""
    extra = [f"--{name.replace('_', '-')}={value}" for name, value in (
        ("image_size", args.image_size), ("crop_size", args.crop_size), ("costs", args.costs),
    ) if value is not None]  # fmt: skip
    _orl_here(["eval", "scenes", "--checkpoint", str(folder / "backbone.pth"), "--scenes",
               str(args.scenes), "--seed", str(seed), "--jobs", str(args.jobs), "--gray", *extra,
               "--out", str(folder / "eval.json")])  # fmt: skip


def scores(report: dict[str, Any]) -> dict[str, float]:
    """The report's scores: its top-level fractions, without the chosen costs (`*_cost`), and
    their grayscale twins as `<name>_gray`."""
    gray = {f"{k}_gray": v for k, v in report.get("gray", {}).items()}
    return {
        k: v
        for k, v in {**report, **gray}.items()
        if isinstance(v, float) and not k.endswith(("_cost", "_cost_gray"))
    }


def summarize(out: Path, seeds: Sequence[int]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per implementation and protocol: mean, sample std (None below 2 seeds), n; percent."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for impl in IMPLS:
        files = [out / impl / f"seed{s}" / "eval.json" for s in seeds]
        reports = [scores(json.loads(f.read_text())) for f in files if f.exists()]
        names = [k for k in reports[0] if all(k in r for r in reports)] if reports else []
        summary[impl] = {}
        for name in names:
            values = 100 * np.array([r[name] for r in reports])
            std = float(values.std(ddof=1)) if len(values) > 1 else None
            summary[impl][name] = {"mean": float(values.mean()), "std": std, "n": len(values)}
    return summary


def agreement(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Difference of the means and whether it is within 2 pooled seed standard deviations."""
    diff = a["mean"] - b["mean"]
    if a["std"] is None or b["std"] is None:
        return f"{diff:+.1f} (n/a)"
    pooled = math.sqrt((a["std"] ** 2 + b["std"] ** 2) / 2)
    return f"{diff:+.1f} ({'yes' if abs(diff) <= 2 * pooled else 'no'})"


def markdown(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Both rows (mean ± std, n) and their difference, per protocol."""
    names = [k for k in summary["orl"] if k in summary["lightly"]]
    lines = ["| implementation | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for impl in IMPLS:
        cells = []
        for name in names:
            s = summary[impl][name]
            spread = f" ± {s['std']:.1f}" if s["std"] is not None else ""
            cells.append(f"{s['mean']:.1f}{spread} (n={s['n']})")
        lines.append(f"| {impl} | " + " | ".join(cells) + " |")
    diffs = [agreement(summary["orl"][n], summary["lightly"][n]) for n in names]
    lines.append("| orl - lightly (within 2 std?) | " + " | ".join(diffs) + " |")
    return "\n".join(lines) + "\n"


def resolve(args: argparse.Namespace) -> tuple[PretrainConfig, list[str]]:
    """The preset with `data` = the scenes' train split (unless set), checked for BYOL."""
    overrides = [f"data={annotation_file(args.scenes, 'train')}", *args.overrides]
    cfg = load_config(PretrainConfig, args.config, overrides)
    unsupported = {
        "method": cfg.method != "byol", "optim.optimizer": cfg.optim.optimizer != "sgd",
        "model.bn_splits": cfg.model.bn_splits != 1, "init_from": cfg.init_from is not None,
    }  # fmt: skip
    for key, bad in unsupported.items():
        if bad:
            raise ConfigError(f"{args.config}: '{key}' must keep BYOL's value for peer parity")
    lightly_transform(cfg.augment)  # refuses augmentations lightly cannot express
    return cfg, overrides


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """One OUT per setting: a resumed comparison must use the settings it started with."""
    path = out / "settings.json"
    if path.exists() and json.loads(path.read_text()) != settings:
        raise ConfigError(f"{out}: holds a comparison with other settings; use another --out")
    atomic_write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n", path)


def run_unit(args: argparse.Namespace, cfg: PretrainConfig, overrides: list[str], impl: str,
             seed: int) -> None:  # fmt: skip
    """Train (unless its backbone exists) and evaluate one (implementation, seed)."""
    folder = args.out / impl / f"seed{seed}"
    if (folder / "eval.json").exists():
        print(f"{impl} seed {seed}: done before, skipped")
        return
    if not (folder / "backbone.pth").exists():
        if impl == "orl":
            train_orl([*overrides, f"seed={seed}"], args.config, folder, args.threads)
        else:
            seeded = load_config(PretrainConfig, args.config, [*overrides, f"seed={seed}"])
            info = train_lightly(seeded, folder)
            atomic_write_text(json.dumps(info, indent=1) + "\n", folder / "train.json")
    evaluate(args, folder, seed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="pre-training preset (BYOL)")
    p.add_argument("--scenes", type=Path, required=True, help="folder written by `orl scenes`")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, required=True, help="work folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--threads", type=int, default=None, help="torch threads of every process")
    p.add_argument("--image-size", type=int, default=None, help="orl eval scenes --image-size")
    p.add_argument("--crop-size", type=int, default=None, help="orl eval scenes --crop-size")
    p.add_argument("--costs", default=None, help="orl eval scenes --costs")
    p.add_argument("--jobs", type=int, default=1, help="orl eval scenes --jobs")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        cfg, overrides = resolve(args)
        eval_args = {k: getattr(args, k) for k in ("image_size", "crop_size", "costs")}
        check_settings(args.out, {"config": to_dict(cfg) | {"seed": None}, "eval": eval_args})
        for seed in args.seeds:
            for impl in IMPLS:
                run_unit(args, cfg, overrides, impl, seed)
    except (ConfigError, EvalInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = summarize(args.out, args.seeds)
    atomic_write_text(json.dumps(summary, indent=1) + "\n", args.out / "summary.json")
    table = markdown(summary)
    atomic_write_text(table, args.out / "summary.md")
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
