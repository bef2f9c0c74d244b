"""The command line of `orl eval {voc07,voc07-lowshot,linear,semi,knn,scenes,corr}` and
`orl export`: one parser per sub-command. What each one does is in `commands.py`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from orl.config import add_set_option
from orl.evaluate.commands import (
    run_corr,
    run_export,
    run_knn,
    run_linear,
    run_lowshot,
    run_scenes,
    run_semi,
    run_voc07,
)
from orl.evaluate.export import FORMATS
from orl.evaluate.features import POOLS, SVM_LAYERS
from orl.evaluate.linear import PRESET_EPOCHS
from orl.evaluate.lowshot import N_SAMPLES, SHOTS
from orl.evaluate.semi import PRESET_WEIGHT_DECAY

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_checkpoint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        help="orl checkpoint, torchvision/timm state dict, safetensors file or folder, "
        "Detectron2 .pkl, or random:ARCH",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random:ARCH weights")


def _common(p: argparse.ArgumentParser) -> None:
    _add_checkpoint_options(p)
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


def _add_costs_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--costs", default=None, help="comma list of SVM costs (default: the benchmark's 19)"
    )


def _sgd_options(p: argparse.ArgumentParser, example: str) -> None:
    add_set_option(p, example)
    p.add_argument(
        "--resume", action="store_true", help="continue from <out stem>.state.pt beside --out"
    )


def _add_svm_parser(sub: SubParsers, name: str, text: str) -> argparse.ArgumentParser:
    """The options the VOC07 SVM protocols share (sec. 4.1, Tables 1 and 2)."""
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
    _add_costs_option(p)
    return p


def _add_voc07_parser(sub: SubParsers) -> None:
    p = _add_svm_parser(sub, "voc07", "VOC07 linear SVM (Table 1)")
    p.set_defaults(func=run_voc07)


def _add_lowshot_parser(sub: SubParsers) -> None:
    p = _add_svm_parser(sub, "voc07-lowshot", "low-shot VOC07 SVM (Table 2)")
    p.set_defaults(func=run_lowshot)
    p.add_argument("--shots", default=",".join(map(str, SHOTS)))
    p.add_argument("--samples", type=int, default=N_SAMPLES)
    p.add_argument("--sample-seed", type=int, default=0, help="base seed of the low-shot draws")
    p.add_argument(
        "--select-c-on-test",
        action="store_true",
        help="original benchmark: one cost per k, best test mAP over the samples (optimistic)",
    )


def _add_linear_parser(sub: SubParsers) -> None:
    p = sub.add_parser("linear", help="linear probes per depth (Table 1); torchrun-ready")
    _common(p)
    p.add_argument("--train", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--preset", choices=sorted(PRESET_EPOCHS), default="imagenet")
    _sgd_options(p, "--set epochs=1 --set layers=[feat4,feat5]")
    p.set_defaults(func=run_linear)


def _add_semi_parser(sub: SubParsers) -> None:
    p = sub.add_parser("semi", help="1%% / 10%% fine-tuning (Table 3); torchrun-ready")
    _common(p)
    p.add_argument("--train", required=True)
    p.add_argument("--subset", required=True, help="SimCLR list of labelled file names")
    p.add_argument("--val", required=True)
    p.add_argument("--preset", choices=sorted(PRESET_WEIGHT_DECAY), default="1pct")
    _sgd_options(p, "--set epochs=1 --set decay_at=[0.6,0.8]")
    p.set_defaults(func=run_semi)


def _add_knn_parser(sub: SubParsers) -> None:
    p = sub.add_parser("knn", help="weighted kNN probe (DINO-style)")
    _common(p)
    _extraction(p)
    p.add_argument("--train", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--layer", choices=sorted(POOLS), default="avgpool")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--temperature", type=float, default=0.07)
    p.set_defaults(func=run_knn)


def _add_scenes_parser(sub: SubParsers) -> None:
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
    _add_costs_option(p)


def _add_corr_parser(sub: SubParsers) -> None:
    p = sub.add_parser("corr", help="stage-2 store against the scene ground truth")
    p.add_argument("--corr", required=True, help="CORR_DIR written by `orl discover`")
    p.add_argument("--scenes", required=True, help="folder written by `orl scenes DIR`")
    p.add_argument("--split", default="train", help="split the store was built on")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-box reference")
    p.add_argument("--out", default=None, help="JSON report path")
    p.set_defaults(func=run_corr)


def _add_export_parser(subparsers: SubParsers) -> None:
    p = subparsers.add_parser(
        "export", help="backbone for torchvision, timm, Detectron2, or a Hugging Face folder"
    )
    _add_checkpoint_options(p)
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


def add_parsers(subparsers: SubParsers) -> None:
    """Register `eval` (voc07, voc07-lowshot, linear, semi, knn, scenes, corr) and
    `export`."""
    ev = subparsers.add_parser("eval", help="transfer protocols of the paper (sec. 4.1)")
    sub = ev.add_subparsers(dest="eval_command", required=True)
    _add_voc07_parser(sub)
    _add_lowshot_parser(sub)
    _add_linear_parser(sub)
    _add_semi_parser(sub)
    _add_knn_parser(sub)
    _add_scenes_parser(sub)
    _add_corr_parser(sub)
    _add_export_parser(subparsers)
