"""PASCAL VOC2007 classification with linear SVMs on frozen features (sec. 4.1, Table 1).

Reads `VOCdevkit/VOC2007`: `ImageSets/Main/{trainval,test}.txt`, `Annotations/<id>.xml` and
`JPEGImages/<id>.jpg`. An image is positive for a class when it holds a non-difficult instance,
"difficult" (label 0) when it holds only difficult ones, negative otherwise. The SVMs are trained
on trainval with difficult images as negatives and tested on test with them excluded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orl.evaluate.features import l2_normalize
from orl.evaluate.inputs import EvalInputError
from orl.evaluate.svm import COSTS, ClassTask, run_svm_tasks, train_labels

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


@dataclass(frozen=True)
class VocSplit:
    """One image set: ids, JPEG paths and labels (N, 20) in {1 present, -1 absent, 0 difficult}."""

    name: str
    ids: tuple[str, ...]
    paths: tuple[Path, ...]
    labels: np.ndarray


def voc2007_root(path: Path) -> Path:
    """Accept `VOCdevkit/VOC2007` or `VOCdevkit` itself."""
    for root in (path, path / "VOC2007"):
        if (root / "ImageSets" / "Main").is_dir():
            return root
    raise EvalInputError(
        f"{path}: no ImageSets/Main here; pass the VOCdevkit/VOC2007 folder of the VOC2007 "
        "trainval+test release"
    )


def parse_annotation(xml_path: Path) -> np.ndarray:
    """Labels of one image from its annotation XML (objects of unknown classes are ignored)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise EvalInputError(
            f"{xml_path}: unreadable annotation ({exc}); re-extract VOC2007"
        ) from exc
    labels = np.full(len(VOC_CLASSES), -1, dtype=np.int8)
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            continue
        c = VOC_CLASSES.index(name)
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        labels[c] = max(labels[c], 0 if difficult else 1)
    return labels


def read_split(voc_root: Path, split: str) -> VocSplit:
    """Read one image set (`trainval` or `test`) with its labels."""
    root = voc2007_root(voc_root)
    listing = root / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        raise EvalInputError(f"{listing}: missing image set; the VOC2007 {split} release has it")
    ids = tuple(line.split()[0] for line in listing.read_text().splitlines() if line.strip())
    labels = np.stack([parse_annotation(root / "Annotations" / f"{i}.xml") for i in ids])
    paths = tuple(root / "JPEGImages" / f"{i}.jpg" for i in ids)
    for p in paths:
        if not p.is_file():
            raise EvalInputError(f"{p}: image listed in {listing} is missing; re-extract VOC2007")
    return VocSplit(split, ids, paths, labels)


# (split name, image paths, depths) -> raw features per depth; the CLI passes a cached extractor,
# tests pass a stub that returns planted vectors.
SplitFeatures = Callable[[str, Sequence[Path], Sequence[str]], dict[str, np.ndarray]]


def voc07_svm(
    trainval: VocSplit,
    test: VocSplit,
    x_train: np.ndarray,
    x_test: np.ndarray,
    costs: Sequence[float] = COSTS,
    n_folds: int = 3,
    jobs: int = 1,
) -> dict[str, Any]:
    """The full protocol on one depth: per-class cost by CV on trainval, fit, test AP, mAP."""
    tasks = [
        ClassTask(None, train_labels(trainval.labels[:, c]), test.labels[:, c])
        for c in range(len(VOC_CLASSES))
    ]
    out = run_svm_tasks(
        l2_normalize(x_train), l2_normalize(x_test), tasks, costs, n_folds, jobs=jobs
    )
    return {
        "mAP": float(np.mean(out.ap)),
        "ap": dict(zip(VOC_CLASSES, out.ap, strict=True)),
        "cost": dict(zip(VOC_CLASSES, out.cost, strict=True)),
        "cv_ap": dict(zip(VOC_CLASSES, out.cv_ap, strict=True)),
        "not_converged": [c for c, ok in zip(VOC_CLASSES, out.converged, strict=True) if not ok],
    }


def evaluate_voc07(
    voc_root: Path,
    features: SplitFeatures,
    layers: Sequence[str],
    costs: Sequence[float] = COSTS,
    n_folds: int = 3,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run `voc07_svm` on every requested depth; the report is JSON-ready."""
    trainval, test = read_split(voc_root, "trainval"), read_split(voc_root, "test")
    train_feats = features("trainval", trainval.paths, layers)
    test_feats = features("test", test.paths, layers)
    return {
        "protocol": "voc07-svm",
        "costs": list(costs),
        "folds": n_folds,
        "n_trainval": len(trainval.ids),
        "n_test": len(test.ids),
        "layers": {
            name: voc07_svm(
                trainval, test, train_feats[name], test_feats[name], costs, n_folds, jobs
            )
            for name in layers
        },
    }


def format_voc07(report: dict[str, Any]) -> str:
    """Per-class AP and mAP, one column per depth, in percent."""
    layers = list(report["layers"])
    lines = [f"{'class':<12}" + "".join(f"{n:>9}" for n in layers)]
    for cls in VOC_CLASSES:
        lines.append(
            f"{cls:<12}" + "".join(f"{100 * report['layers'][n]['ap'][cls]:9.2f}" for n in layers)
        )
    lines.append(
        f"{'mAP':<12}" + "".join(f"{100 * report['layers'][n]['mAP']:9.2f}" for n in layers)
    )
    return "\n".join(lines)
