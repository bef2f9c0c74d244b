"""What each `orl eval` sub-command (voc07, voc07-lowshot, linear, semi, knn, scenes, corr) and
`orl export` do; their options are in `cli.py`.

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
from orl.config import override, to_dict
from orl.distributed import cleanup, init_distributed
from orl.evaluate.classification import StateFile, image_folder, state_path, train_transform
from orl.evaluate.corr_quality import format_corr_quality, score_correspondences
from orl.evaluate.export import export_hub_folder, export_weights
from orl.evaluate.features import (
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
    linear_config,
    linear_train_transform,
    train_linear,
)
from orl.evaluate.lowshot import evaluate_lowshot, format_lowshot
from orl.evaluate.model_card import read_results, training_facts
from orl.evaluate.scenes import evaluate_scenes, format_scenes
from orl.evaluate.semi import finetune, semi_config, subset_indices
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
