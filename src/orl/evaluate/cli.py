"""`orl eval {voc07,voc07-lowshot,linear,semi,knn,scenes,corr}`, `orl export`: parsing
and wiring.

No protocol logic lives here; each handler resolves inputs, calls one protocol function, prints its
table and writes its JSON report.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orl.artifacts import atomic_write_text
from orl.config import add_set_option, override, to_dict
from orl.distributed import cleanup, init_distributed
from orl.evaluate.classification import StateFile, image_folder, state_path, train_transform
from orl.evaluate.corr_quality import format_corr_quality, score_correspondences
from orl.evaluate.export import FORMATS, export_hub_folder, export_weights
from orl.evaluate.features import (
    POOLS,
    SVM_LAYERS,
    cached_features,
    center_crop_transform,
    extract_features,
    l2_normalize,
    parse_layers,
    svm_transform,
)
from orl.evaluate.inputs import EvalInputError, load_weights, random_weights
from orl.evaluate.knn import knn_scores, topk_accuracy
from orl.evaluate.linear import (
    PRESET_EPOCHS,
    linear_config,
    linear_train_transform,
    train_linear,
)
from orl.evaluate.lowshot import N_SAMPLES, SHOTS, evaluate_lowshot, format_lowshot
from orl.evaluate.model_card import read_results, training_facts
from orl.evaluate.scenes import evaluate_scenes, format_scenes
from orl.evaluate.semi import PRESET_WEIGHT_DECAY, finetune, semi_config, subset_indices
from orl.evaluate.svm import COSTS
from orl.evaluate.voc07 import SplitFeatures, evaluate_voc07, format_voc07, voc2007_root
from orl.models.backbone import build_backbone
from orl.models.pretrained import Pretrained


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write the report atomically (temp file + rename)."""
    atomic_write_text(json.dumps(report, indent=2), path)


def _device(name: str) -> torch.device:
    return torch.device(
        "cuda" if name == "auto" and torch.cuda.is_available() else name.replace("auto", "cpu")
    )


def _cache_dir(args: argparse.Namespace) -> Path:
    if args.cache_dir is not None:
        return Path(args.cache_dir)
    if args.out is not None:
        return Path(args.out).parent / "feature-cache"
    return Path.home() / ".cache" / "orl" / "features"


def _voc_features(args: argparse.Namespace, weights: Pretrained) -> SplitFeatures:
    """Cached extractor for the VOC07 splits (one forward for every missing depth)."""
    backbone, device, root = (
        weights.build_backbone(),
        _device(args.device),
        voc2007_root(Path(args.voc)),
    )

    def features(split: str, paths: Sequence[Path], layers: Sequence[str]) -> dict[str, np.ndarray]:
        return cached_features(
            _cache_dir(args), weights.identity, f"voc2007:{root.resolve()}:{split}", paths, layers,
            "resize256-squash224",
            lambda p, names: extract_features(
                backbone, p, names, svm_transform(), args.batch_size, args.workers, device
            ),
        )  # fmt: skip

    return features


def _costs(text: str | None) -> tuple[float, ...]:
    """`--costs` (a deviation for quick runs) or the benchmark's 19 costs."""
    if text is None:
        return COSTS
    try:
        return tuple(float(c) for c in text.split(","))
    except ValueError as exc:
        raise EvalInputError(f"--costs {text}: expected a comma list of numbers") from exc


def _finish(report: dict[str, Any], text: str, out: str | None) -> int:
    print(text)
    if out is not None:
        write_json(report, Path(out))
        print(f"wrote {out}")
    return 0


def run_voc07(args: argparse.Namespace) -> int:
    weights = load_weights(args.checkpoint, args.seed)
    layers = parse_layers(args.layers)
    report = evaluate_voc07(
        Path(args.voc), _voc_features(args, weights), layers, _costs(args.costs), jobs=args.jobs
    )
    report["checkpoint"] = weights.identity
    return _finish(report, format_voc07(report), args.out)


def run_lowshot(args: argparse.Namespace) -> int:
    weights = load_weights(args.checkpoint, args.seed)
    report = evaluate_lowshot(
        Path(args.voc), _voc_features(args, weights), parse_layers(args.layers),
        shots=[int(k) for k in args.shots.split(",")], n_samples=args.samples,
        base_seed=args.sample_seed, costs=_costs(args.costs), select_on_test=args.select_c_on_test,
        jobs=args.jobs,
    )  # fmt: skip
    report["checkpoint"] = weights.identity
    return _finish(report, format_lowshot(report), args.out)


def _folders(args: argparse.Namespace, train_tf: Any, val_tf: Any) -> tuple[Any, Any]:
    train = image_folder(Path(args.train), train_tf)
    val = image_folder(Path(args.val), val_tf)
    if train.classes != val.classes:
        raise EvalInputError(
            f"{args.val}: class folders differ from {args.train}; use matching splits"
        )
    return train, val


def _state_file(args: argparse.Namespace, weights: Pretrained, cfg: Any) -> StateFile | None:
    """`<out stem>.state.pt` beside `--out`, stamped with the checkpoint, settings and folders."""
    if args.out is None:
        if args.resume:
            raise EvalInputError("--resume: also pass --out (the run's state is kept beside it)")
        return None
    folders = ("train", "subset", "val")
    inputs = {k: str(Path(getattr(args, k)).resolve()) for k in folders if hasattr(args, k)}
    stamp = {
        "protocol": args.eval_command,
        "checkpoint": weights.identity,
        "settings": to_dict(cfg),
        "inputs": inputs,
    }
    return StateFile(state_path(Path(args.out)), stamp)


def run_linear(args: argparse.Namespace) -> int:
    cfg = override(linear_config(args.preset), args.overrides)
    parse_layers(",".join(cfg.layers))
    dist = init_distributed(args.device)
    weights = load_weights(args.checkpoint, args.seed)
    train, val = _folders(args, linear_train_transform(cfg), center_crop_transform())
    state = _state_file(args, weights, cfg)
    report = train_linear(
        weights.build_backbone(), train, val, len(train.classes), cfg, dist, state, args.resume
    )
    report["checkpoint"] = weights.identity
    text = "\n".join(
        f"{n}: top-1 {100 * report['top1'][n]:.2f}  top-5 {100 * report['top5'][n]:.2f}"
        for n in cfg.layers
    )
    code = _finish(report, text, args.out) if dist.is_main else 0
    cleanup()
    return code


def run_semi(args: argparse.Namespace) -> int:
    cfg = override(semi_config(args.preset), args.overrides)
    dist = init_distributed(args.device)
    weights = load_weights(args.checkpoint, args.seed)
    train, val = _folders(args, train_transform(), center_crop_transform())
    indices = subset_indices(train, Path(args.subset))
    _, width = build_backbone(weights.arch)
    state = _state_file(args, weights, cfg)
    report = finetune(
        weights.build_backbone(),
        width,
        train,
        indices,
        val,
        len(train.classes),
        cfg,
        dist,
        state,
        args.resume,
    )
    report["checkpoint"] = weights.identity
    text = (
        f"top-1 {100 * report['top1']:.2f}  top-5 {100 * report['top5']:.2f}  "
        f"({len(indices)} labelled images)"
    )
    code = _finish(report, text, args.out) if dist.is_main else 0
    cleanup()
    return code


def run_knn(args: argparse.Namespace) -> int:
    weights = load_weights(args.checkpoint, args.seed)
    backbone, device = weights.build_backbone(), _device(args.device)
    tf = center_crop_transform()
    train, val = _folders(args, tf, tf)
    feats = []
    for name, data in (("train", train), ("val", val)):
        paths = [Path(p) for p, _ in data.samples]
        feats.append(
            cached_features(
                _cache_dir(args), weights.identity, f"folder:{Path(data.root).resolve()}:{name}",
                paths, [args.layer], "resize256-crop224",
                lambda p, names: extract_features(
                    backbone, p, names, tf, args.batch_size, args.workers, device
                ),
            )[args.layer]
        )  # fmt: skip
    scores = knn_scores(
        l2_normalize(feats[0]), np.array(train.targets), l2_normalize(feats[1]),
        len(train.classes), args.k, args.temperature,
    )  # fmt: skip
    acc = topk_accuracy(scores, np.array(val.targets))
    report = {"protocol": "knn", "layer": args.layer, "k": args.k, "temperature": args.temperature,
              "checkpoint": weights.identity, **acc}  # fmt: skip
    return _finish(
        report,
        f"kNN ({args.layer}, k={args.k}): top-1 {100 * acc['top1']:.2f}  "
        f"top-5 {100 * acc['top5']:.2f}",
        args.out,
    )


def run_scenes(args: argparse.Namespace) -> int:
    weights = (
        random_weights(args.arch, args.seed)
        if args.checkpoint == "random"
        else load_weights(args.checkpoint, args.seed)
    )
    report = evaluate_scenes(
        Path(args.scenes), weights.build_backbone(), image_size=args.image_size,
        crop_size=args.crop_size, baselines=args.baselines, seed=args.seed,
        costs=_costs(args.costs), batch_size=args.batch_size, device=_device(args.device),
        jobs=args.jobs, gray=args.gray,
    )  # fmt: skip
    report["checkpoint"] = weights.identity
    return _finish(report, format_scenes(report), args.out)


def run_corr(args: argparse.Namespace) -> int:
    report = score_correspondences(Path(args.corr), Path(args.scenes), args.split, args.seed)
    return _finish(report, format_corr_quality(report), args.out)


def run_export(args: argparse.Namespace) -> int:
    weights = load_weights(args.checkpoint, args.seed)
    if args.results and args.format != "safetensors":
        raise EvalInputError("--results goes into the model card: use it with --format safetensors")
    if args.format == "safetensors":
        facts = (
            training_facts(Path(args.checkpoint)) if weights.identity.startswith("orl:") else None
        )
        results = read_results([Path(r) for r in args.results], weights)
        out = export_hub_folder(weights, Path(args.out), facts, results)
    else:
        out = export_weights(weights, args.format, Path(args.out))
    print(f"wrote {out} ({args.format}, {weights.arch}, from {weights.identity})")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        help="orl checkpoint, torchvision/timm state dict, safetensors file or folder, "
        "Detectron2 .pkl, or random:ARCH",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random:ARCH weights")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--out", default=None, help="JSON report path")


def _extraction(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache (default: <out folder>/feature-cache or ~/.cache/orl/features)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=4, help="data-loading processes")


def _sgd_options(p: argparse.ArgumentParser, example: str) -> None:
    add_set_option(p, example)
    p.add_argument(
        "--resume", action="store_true", help="continue from <out stem>.state.pt beside --out"
    )


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `eval` (voc07, voc07-lowshot, linear, semi, knn, scenes, corr) and
    `export`."""
    ev = subparsers.add_parser("eval", help="transfer protocols of the paper (sec. 4.1)")
    sub = ev.add_subparsers(dest="eval_command", required=True)

    for name, func, text in (
        ("voc07", run_voc07, "VOC07 linear SVM (Table 1)"),
        ("voc07-lowshot", run_lowshot, "low-shot VOC07 SVM (Table 2)"),
    ):
        p = sub.add_parser(name, help=text)
        _common(p)
        _extraction(p)
        p.add_argument("--voc", required=True, help="VOCdevkit/VOC2007 folder")
        p.add_argument(
            "--layers", default="feat5", help=f"comma list of {','.join(SVM_LAYERS)}, or all"
        )
        p.add_argument(
            "--jobs", type=int, default=-1, help="joblib processes for the SVMs (-1: all cores)"
        )
        p.add_argument(
            "--costs", default=None, help="comma list of SVM costs (default: the benchmark's 19)"
        )
        p.set_defaults(func=func)
        if name == "voc07-lowshot":
            p.add_argument("--shots", default=",".join(map(str, SHOTS)))
            p.add_argument("--samples", type=int, default=N_SAMPLES)
            p.add_argument(
                "--sample-seed", type=int, default=0, help="base seed of the low-shot draws"
            )
            p.add_argument(
                "--select-c-on-test",
                action="store_true",
                help="original benchmark: one cost per k, best test mAP over the samples "
                "(optimistic)",
            )

    p = sub.add_parser("linear", help="linear probes per depth (Table 1); torchrun-ready")
    _common(p)
    p.add_argument("--train", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--preset", choices=sorted(PRESET_EPOCHS), default="imagenet")
    _sgd_options(p, "--set epochs=1 --set layers=[feat4,feat5]")
    p.set_defaults(func=run_linear)

    p = sub.add_parser("semi", help="1%% / 10%% fine-tuning (Table 3); torchrun-ready")
    _common(p)
    p.add_argument("--train", required=True)
    p.add_argument("--subset", required=True, help="SimCLR list of labelled file names")
    p.add_argument("--val", required=True)
    p.add_argument("--preset", choices=sorted(PRESET_WEIGHT_DECAY), default="1pct")
    _sgd_options(p, "--set epochs=1 --set decay_at=[0.6,0.8]")
    p.set_defaults(func=run_semi)

    p = sub.add_parser("knn", help="weighted kNN probe (DINO-style)")
    _common(p)
    _extraction(p)
    p.add_argument("--train", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--layer", choices=sorted(POOLS), default="avgpool")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--temperature", type=float, default=0.07)
    p.set_defaults(func=run_knn)

    p = sub.add_parser("scenes", help="scene benchmark: scene SVM mAP and object-crop accuracy")
    _common(p)
    p.set_defaults(func=run_scenes)
    p.add_argument("--scenes", required=True, help="folder written by `orl scenes DIR`")
    p.add_argument("--arch", default="resnet18", help="architecture of --checkpoint random")
    p.add_argument("--baselines", action="store_true", help="also colour histogram, raw pixels")
    p.add_argument("--gray", action="store_true", help="also every row on grayscale images")
    p.add_argument("--image-size", type=int, default=None, help="scene side (default: as is)")
    p.add_argument("--crop-size", type=int, default=64, help="side of the object crops")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--jobs", type=int, default=-1, help="joblib processes (-1: all cores)")
    p.add_argument(
        "--costs", default=None, help="comma list of SVM costs (default: the benchmark's 19)"
    )

    p = sub.add_parser("corr", help="stage-2 store against the scene ground truth")
    p.add_argument("--corr", required=True, help="CORR_DIR written by `orl discover`")
    p.add_argument("--scenes", required=True, help="folder written by `orl scenes DIR`")
    p.add_argument("--split", default="train", help="split the store was built on")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-box reference")
    p.add_argument("--out", default=None, help="JSON report path")
    p.set_defaults(func=run_corr)

    p = subparsers.add_parser(
        "export", help="backbone for torchvision, timm, Detectron2, or a Hugging Face folder"
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="orl checkpoint, torchvision/timm state dict, safetensors file or folder, "
        "Detectron2 .pkl, or random:ARCH",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random:ARCH weights")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", required=True, help="a file (a folder for safetensors)")
    p.add_argument(
        "--results",
        action="append",
        default=[],
        metavar="JSON",
        help="`orl eval ... --out` report of this checkpoint for the model card (repeatable)",
    )
    p.set_defaults(func=run_export)
