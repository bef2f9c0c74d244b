"""Command-line entry points of the training jobs: `orl pretrain` (stage 1 BYOL or stage 3 ORL,
sec. 3.1), `orl submit` (the same on SLURM), `orl supervised` (the scene benchmark's ceiling) and
`orl bench train` (steady-state images/s).

Thin: each handler reads the config, calls one library function and prints what it did.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from orl.config import ConfigError, add_set_option, load_config
from orl.train.config import PretrainConfig

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path, required=True, help="a preset name (`orl presets`) or a YAML file"
    )
    add_set_option(p, "--set epochs=1 --set optim.lr=0.1")
    p.add_argument("--corr", type=Path, help="correspondence store for ORL (sets orl.corr)")


def _pretrain_config(args: argparse.Namespace) -> PretrainConfig:
    overrides = list(args.overrides)
    if args.corr is not None:
        overrides.append(f"orl.corr={args.corr}")
    try:
        return load_config(PretrainConfig, args.config, overrides)
    except ValueError as exc:  # invalid values caught by the dataclass checks
        raise ConfigError(str(exc)) from exc


def add_resume_option(p: argparse.ArgumentParser, what: str) -> None:
    """`--resume [auto]` of the commands that continue `what` when it is there."""
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        choices=["auto"],
        help=f"continue {what} if there is one, else start (`--resume` = `--resume auto`)",
    )


def cmd_pretrain(args: argparse.Namespace) -> int:
    from orl.train.loop import pretrain

    cfg = _pretrain_config(args)
    summary = pretrain(cfg, args.out, resume=args.resume is not None)
    print(
        f"done: {summary.steps} steps, final loss {summary.final_loss:.4f}, "
        f"{summary.images_per_s:.1f} images/s, {summary.wall_time_s:.0f} s wall, "
        f"{summary.skipped} skipped files -> {args.out}"
    )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from orl.train.submit import Cluster, PretrainJob, submit

    _pretrain_config(args)  # bad settings fail here, not on the cluster
    overrides = [*args.overrides, *([f"orl.corr={args.corr}"] if args.corr else [])]
    out = args.out.resolve()
    config = str(args.config.resolve() if args.config.is_file() else args.config)  # or a preset
    job = PretrainJob(config, tuple(overrides), str(out), args.resume is not None)
    cluster = Cluster(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        partition=args.partition,
        time_min=args.time,
        cpus_per_task=args.cpus_per_task,
    )
    submitted = submit(job, cluster, args.cluster)
    print(f"submitted job {submitted.job_id} -> {out} (logs: {submitted.paths.folder})")
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    import torch

    from orl.train.loop import pretrain

    if args.augment_backend is not None:
        args.overrides.append(f"augment.backend={args.augment_backend}")
    cfg = _pretrain_config(args)
    summary = pretrain(cfg, None, max_steps=args.warmup + args.steps, bench_warmup=args.warmup)
    print(f"data wait: {100 * summary.data_wait_fraction:.1f}% of step time")
    if torch.cuda.is_available():
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"train images/s: {summary.images_per_s:.2f}")
    return 0


def cmd_supervised(args: argparse.Namespace) -> int:
    from orl.train.supervised import check_output, save_supervised, train_supervised

    args.corr = None
    cfg = _pretrain_config(args)
    check_output(args.out, args.force)
    if not args.scenes.is_dir():
        raise ConfigError(f"{args.scenes}: no such folder; pass a folder `orl scenes DIR` wrote")
    backbone, summary = train_supervised(
        cfg, args.scenes, args.target, args.augment, args.epochs, args.crop_size
    )
    weights = save_supervised(backbone, summary, args.out)
    print(
        f"supervised {args.target}: training score {100 * summary['train_score']:.1f} "
        f"(chance {100 * summary['train_chance']:.1f}), {summary['steps']} steps, final loss "
        f"{summary['final_loss']:.4f} -> {weights}"
    )
    return 0


def add_pretrain_parser(sub: SubParsers) -> None:
    p = sub.add_parser("pretrain", help="stage 1 (BYOL) or stage 3 (ORL) pre-training")
    _add_train_options(p)
    p.add_argument("--out", type=Path, required=True, help="run folder")
    add_resume_option(p, "from RUN/checkpoints/last.pt")
    p.set_defaults(func=cmd_pretrain)


def add_submit_parser(sub: SubParsers) -> None:
    p = sub.add_parser("submit", help="orl pretrain on SLURM via submitit, requeued when stopped")
    _add_train_options(p)
    p.add_argument("--out", type=Path, required=True, help="run folder (shared file system)")
    add_resume_option(p, "from RUN/checkpoints/last.pt")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--gpus-per-node", type=int, default=8, help="one process per GPU")
    p.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    p.add_argument("--time", type=int, default=4320, help="time limit per job in minutes")
    p.add_argument("--cpus-per-task", type=int, default=10, help="CPUs of each GPU's process")
    p.add_argument(
        "--cluster",
        choices=["slurm", "local"],
        default=None,
        help="default: SLURM when srun is found; local: submitit's local executor (tests)",
    )
    p.set_defaults(func=cmd_submit)


def add_supervised_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "supervised", help="the scene benchmark's ceiling: a preset's network trained with labels"
    )
    p.add_argument(
        "--config", type=Path, required=True, help="pre-training preset (net, optimizer)"
    )
    add_set_option(p, "--set seed=1")
    p.add_argument("--scenes", type=Path, required=True, help="folder written by `orl scenes DIR`")
    p.add_argument("--target", choices=("scene", "crops", "instances"), required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for backbone.pth, summary.json")
    p.add_argument("--augment", choices=("crop_flip", "byol"), default="crop_flip")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--crop-size", type=int, default=None, help="default: augment.patch_size")
    p.add_argument("--force", action="store_true", help="overwrite an existing run in --out")
    p.set_defaults(func=cmd_supervised)


def add_bench_parser(sub: SubParsers) -> None:
    p = sub.add_parser("bench", help="throughput benchmarks")
    bench = p.add_subparsers(dest="bench", required=True)
    p = bench.add_parser("train", help="steady-state training images/s (writes nothing)")
    _add_train_options(p)
    p.add_argument("--warmup", type=int, default=3, help="steps excluded from the measurement")
    p.add_argument("--steps", type=int, default=10, help="measured steps")
    p.add_argument(
        "--augment-backend",
        choices=["pil", "gpu"],
        help="decode and augment in the loader workers (pil) or on the device (gpu)",
    )
    p.set_defaults(func=cmd_bench_train)
