"""Command-line entry points of stage 2: `orl discover` and `orl corr ...`.

Thin: each handler parses, calls one library function and returns an exit code. User-input
errors are ValueError subclasses with one-line messages (the top-level CLI maps them to exit 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from orl.config import add_set_option, load_config
from orl.data.sources import ImageList, resolve_sources
from orl.discover.config import DiscoverConfig
from orl.discover.inspect import format_summary, store_summary
from orl.discover.interop import export_authors_json, import_authors_json
from orl.discover.pipeline import run_discover
from orl.discover.proposals import parse_authors_proposals, write_proposal_file
from orl.discover.store import CorrespondenceStore

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _discover(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.boxes:
        overrides.append(f"boxes={args.boxes}")
    cfg = load_config(DiscoverConfig, args.config, overrides)
    out = run_discover(cfg, args.checkpoint, args.data, args.out, args.resume)
    print(f"correspondence store written to {out}")
    return 0


def _store_images(store: CorrespondenceStore, data: list[str] | None) -> ImageList:
    """The store's data set: `--data` when given, else the sources recorded in its meta."""
    return resolve_sources(data or store.meta.get("sources", []))


def _export(args: argparse.Namespace) -> int:
    store = CorrespondenceStore.open(args.corr_dir)
    images = _store_images(store, args.data)
    CorrespondenceStore.open(args.corr_dir, images.fingerprint)  # one-line refusal on mismatch
    export_authors_json(store, images, args.out_json)
    print(f"wrote {args.out_json}")
    return 0


def _import(args: argparse.Namespace) -> int:
    import_authors_json(args.in_json, resolve_sources(args.data), args.corr_dir, args.force)
    print(f"wrote store {args.corr_dir}")
    return 0


def _import_proposals(args: argparse.Namespace) -> int:
    images = resolve_sources(args.data)
    raw = parse_authors_proposals(args.in_json, images)
    write_proposal_file(raw, images, args.out_dir)
    print(
        f"wrote {args.out_dir}; use it with: orl discover --set boxes=file "
        f"--set proposal_file={args.out_dir} ..."
    )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    summary = store_summary(CorrespondenceStore.open(args.corr_dir))
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def _add_repeated_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        action="append",
        required=True,
        help="data source (repeat --data for several); the positional may follow",
    )


def add_parsers(subparsers: SubParsers) -> None:
    """Register `discover` and `corr`."""
    p = subparsers.add_parser("discover", help="stage 2: correspondence discovery")
    p.add_argument("--checkpoint", type=Path, required=True, help="stage-1 RUN/checkpoints/last.pt")
    p.add_argument("--data", nargs="+", required=True, help="image folder, .txt list or COCO json")
    p.add_argument("--out", type=Path, required=True, help="CORR_DIR for the store")
    p.add_argument("--config", type=Path, default=None, help="YAML with DiscoverConfig settings")
    add_set_option(p, "--set k=10 --set ss_max_side=320")
    p.add_argument("--boxes", choices=("selective-search", "coco-gt", "file"), default=None)
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    p.set_defaults(func=_discover)

    corr = subparsers.add_parser("corr", help="correspondence stores: convert and inspect")
    sub = corr.add_subparsers(dest="corr_command", required=True)
    e = sub.add_parser("export-json", help="write the authors' JSON schema")
    e.add_argument("corr_dir", type=Path)
    e.add_argument("out_json", type=Path)
    e.add_argument("--data", nargs="+", default=None, help="default: the sources in meta.json")
    e.set_defaults(func=_export)
    i = sub.add_parser("import-json", help="build a store from the authors' JSON")
    i.add_argument("in_json", type=Path)
    _add_repeated_data(i)
    i.add_argument("corr_dir", type=Path)
    i.add_argument("--force", action="store_true", help="replace a store already in corr_dir")
    i.set_defaults(func=_import)
    r = sub.add_parser("import-proposals", help="authors' raw proposals for `--set boxes=file`")
    r.add_argument("in_json", type=Path)
    _add_repeated_data(r)
    r.add_argument("out_dir", type=Path)
    r.set_defaults(func=_import_proposals)
    s = sub.add_parser("inspect", help="counts and distributions of a store")
    s.add_argument("corr_dir", type=Path)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_inspect)
