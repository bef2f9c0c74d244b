"""The scene benchmark's two linear probes on frozen features (docs/scenes.md).

Classifiers are trained on the TRAIN split and scored on the TEST split:
- whole scenes: the VOC07 SVM protocol applied to scenes (Goyal et al. 2019; sec. 4.1, Table 1):
  features L2-normalised, one LinearSVC per category, cost by 3-fold CV AP on train, all-point AP
  on test, mean over the categories (`svm.run_svm_tasks`);
- object crops: every object cut out by its visible box (`scene_features.square_crop`), resized to
  `crop_size`, one multi-class linear classifier -> top-1 and mean per-class accuracy;
- when the folder has a `test_seen` split, the instance protocol of `scene_instances`: crops of the
  train instances in new scenes, retrieved among the train crops and classified by instance.
Hand-crafted baselines (colour histogram, raw pixels) go through the same classifiers, so a
learned representation can be read against them and against a random-init backbone. With `gray`,
every feature kind is also computed on grayscale images (`<name>_gray`): colour is a shortcut on
this benchmark (a colour histogram beats a random network), and BYOL's augmentations teach
features to ignore it, so each protocol is also read with colour taken away.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from orl.data.scenes.layout import SEEN_SPLIT
from orl.evaluate.features import l2_normalize
from orl.evaluate.inputs import EvalInputError, random_weights
from orl.evaluate.probe import label_matrix
from orl.evaluate.scene_data import SceneSplit, decode_scenes, has_split, read_scene_split
from orl.evaluate.scene_features import (
    BASELINES,
    Featurizer,
    backbone_featurizer,
    crop_batches,
    featurize,
    grayscale_featurizer,
    scene_batches,
)
from orl.evaluate.scene_instances import instance_retrieval
from orl.evaluate.svm import COSTS, ClassTask, run_svm_tasks, train_labels

# Inverse L2 strengths of the crop classifier, chosen by CV (features are standardised first).
CROP_COSTS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
BACKBONE = "backbone"


def random_backbone(arch: str = "resnet18", seed: int = 0) -> nn.Module:
    """A seeded random-init backbone (torchvision's init): the benchmark's random reference."""
    return random_weights(arch, seed).build_backbone()


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension zero mean, unit variance with the training split's statistics."""
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    return (train - mean) / std, (test - mean) / std


def scene_svm(
    x_train: np.ndarray,
    labels_train: Sequence[Sequence[str]],
    x_test: np.ndarray,
    labels_test: Sequence[Sequence[str]],
    costs: Sequence[float] = COSTS,
    jobs: int = 1,
) -> dict[str, Any]:
    """Multi-label VOC07 SVM on scenes: per-category AP on test and their mean.

    A category needs a positive and a negative scene in each split to be scored; the others are
    listed under `scene_skipped` (a test AP without a positive is undefined).
    """
    classes, y = label_matrix([*labels_train, *labels_test])
    y_train, y_test = y[: len(labels_train)], y[len(labels_train) :]
    kept = [
        c
        for c in range(len(classes))
        if all(0 < (part[:, c] == 1).sum() < len(part) for part in (y_train, y_test))
    ]
    if not kept:
        raise EvalInputError("no category has positive and negative scenes in both splits")
    tasks = [ClassTask(None, train_labels(y_train[:, c]), y_test[:, c]) for c in kept]
    out = run_svm_tasks(l2_normalize(x_train), l2_normalize(x_test), tasks, costs, jobs=jobs)
    return {
        "scene_map": float(np.mean(out.ap)),
        "scene_ap": {classes[c]: ap for c, ap in zip(kept, out.ap, strict=True)},
        "scene_cost": {classes[c]: cost for c, cost in zip(kept, out.cost, strict=True)},
        "scene_skipped": [name for c, name in enumerate(classes) if c not in kept],
    }


def crop_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    costs: Sequence[float] = CROP_COSTS,
    seed: int = 0,
    jobs: int = 1,
) -> dict[str, float]:
    """Multi-class linear classifier on crops: top-1 and mean per-class accuracy on test.

    Multinomial logistic regression rather than one-vs-rest LinearSVCs: one joint softmax fit
    whose class scores are comparable for the argmax (independent SVMs' margins are not), and
    lbfgs fits ~10k crops x 512-d in seconds where high-cost liblinear fits hit max_iter.
    Features are L2-normalised (as for the SVMs), then standardised; the inverse regularisation
    strength C is chosen by stratified 3-fold CV accuracy on the training crops.
    """
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    search = GridSearchCV(
        model,
        {"logisticregression__C": list(costs)},
        cv=StratifiedKFold(3, shuffle=True, random_state=seed),
        n_jobs=jobs,
    )
    with warnings.catch_warnings():
        # Weakly regularised fits on separable crops stop at max_iter; the CV scores them as is.
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(l2_normalize(x_train), y_train)
    predicted = search.predict(l2_normalize(x_test))
    per_class = [float(np.mean(predicted[y_test == c] == c)) for c in np.unique(y_test)]
    return {
        "crop_top1": float(np.mean(predicted == y_test)),
        "crop_mean_class_acc": float(np.mean(per_class)),
        "crop_cost": float(search.best_params_["logisticregression__C"]),
    }


@dataclass(frozen=True)
class SceneFeatures:
    """Features of one split per feature kind: whole scenes (N, D) and object crops (M, D)."""

    split: SceneSplit
    scenes: dict[str, np.ndarray]
    crops: dict[str, np.ndarray]


def extract_split(
    split: SceneSplit,
    featurizers: Mapping[str, Featurizer],
    image_size: int | None,
    crop_size: int,
    batch_size: int,
    whole_scenes: bool = True,
) -> SceneFeatures:
    """Decode the split once, then one pass over its scenes (unless not `whole_scenes`) and one
    over its object crops."""
    pixels = decode_scenes(split)
    crops = crop_batches(pixels, split.obj_image, split.obj_box, crop_size, batch_size)
    n_scenes, n_crops = (-(-n // batch_size) for n in (len(pixels), len(split.obj_image)))
    scenes = (
        featurize(scene_batches(pixels, image_size, batch_size), featurizers, n_scenes, "scenes")
        if whole_scenes
        else {}
    )
    return SceneFeatures(split, scenes, featurize(crops, featurizers, n_crops, "object crops"))


def _probe(
    name: str,
    train: SceneFeatures,
    test: SceneFeatures,
    seen: SceneFeatures | None,
    costs: Sequence[float],
    seed: int,
    jobs: int,
) -> dict[str, Any]:
    """Every measure for one feature kind; raw pixels are standardised first (the doc's recipe)."""
    s_train, s_test = train.scenes[name], test.scenes[name]
    c_train, c_test = train.crops[name], test.crops[name]
    if name.startswith("raw_pixels"):
        s_train, s_test = _standardize(s_train, s_test)
        c_train, c_test = _standardize(c_train, c_test)
    labels_train, labels_test = train.split.image_labels(), test.split.image_labels()
    report = scene_svm(s_train, labels_train, s_test, labels_test, costs, jobs=jobs)
    crop = crop_classifier(
        c_train, train.split.obj_category, c_test, test.split.obj_category, seed=seed, jobs=jobs
    )
    report.update(crop)
    if seen is not None:
        queries = seen.crops[name]
        if name.startswith("raw_pixels"):
            _, queries = _standardize(train.crops[name], queries)
        ids_train, ids_seen = train.split.obj_instance, seen.split.obj_instance
        report.update(instance_retrieval(c_train, ids_train, queries, ids_seen))
        probe = crop_classifier(c_train, ids_train, queries, ids_seen, seed=seed, jobs=jobs)
        report["instance_top1"] = probe["crop_top1"]
    return report


def _read_splits(scenes_dir: Path) -> tuple[SceneSplit, SceneSplit, SceneSplit | None]:
    """The train and test splits, and the `test_seen` split when the folder has one."""
    train, test = read_scene_split(scenes_dir, "train"), read_scene_split(scenes_dir, "test")
    seen = read_scene_split(scenes_dir, SEEN_SPLIT) if has_split(scenes_dir, SEEN_SPLIT) else None
    if train.categories != test.categories:
        raise EvalInputError(f"{scenes_dir}: train and test annotations list other categories")
    if not len(train.obj_image) or not len(test.obj_image):
        raise EvalInputError(f"{scenes_dir}: a split has no annotated object to crop")
    return train, test, seen


def _featurizers(
    backbone: nn.Module | None, device: torch.device | None, baselines: bool, gray: bool
) -> dict[str, Featurizer]:
    """The feature kinds to probe: the backbone, the baselines, and their grayscale twins."""
    featurizers: dict[str, Featurizer] = dict(BASELINES) if baselines else {}
    if backbone is not None:
        featurizers[BACKBONE] = backbone_featurizer(backbone, device)
    if not featurizers:
        raise ValueError("evaluate_scenes needs a backbone or baselines=True")
    if gray:
        featurizers.update({f"{k}_gray": grayscale_featurizer(f) for k, f in featurizers.items()})
    return featurizers


def evaluate_scenes(
    scenes_dir: Path,
    backbone: nn.Module | None,
    *,
    image_size: int | None = None,
    crop_size: int = 64,
    baselines: bool = False,
    seed: int = 0,
    costs: Sequence[float] = COSTS,
    batch_size: int = 128,
    device: torch.device | None = None,
    jobs: int = 1,
    gray: bool = False,
) -> dict[str, Any]:
    """Scene mAP and crop accuracy of `backbone` (None: only the baselines) on a scene folder,
    and the instance protocol when the folder has a `test_seen` split.

    `image_size` resizes whole scenes before the backbone (None: their own size); crops are always
    cut from the full-size scene and resized to `crop_size`. With `baselines`, the colour histogram
    and raw pixels are reported under `baselines`; with `gray`, every row is repeated on grayscale
    images under `<name>_gray` (the backbone's as `gray`). `seed` drives the classifiers' CV
    folds. The backbone is put in eval mode (and channels-last memory format) in place.
    """
    train, test, seen = _read_splits(scenes_dir)
    featurizers = _featurizers(backbone, device, baselines, gray)
    f_train, f_test = (
        extract_split(s, featurizers, image_size, crop_size, batch_size) for s in (train, test)
    )
    f_seen = (
        None
        if seen is None
        else extract_split(seen, featurizers, image_size, crop_size, batch_size, False)
    )
    report: dict[str, Any] = {
        "n_train": len(train),
        "n_test": len(test),
        "n_train_crops": len(train.obj_image),
        "n_test_crops": len(test.obj_image),
        "image_size": image_size or int(train.widths[0]),
        "crop_size": crop_size,
        "costs": list(costs),
    }
    if seen is not None:
        report["n_test_seen_crops"] = len(seen.obj_image)
    rows = {name: _probe(name, f_train, f_test, f_seen, costs, seed, jobs) for name in featurizers}
    if backbone is not None:
        report.update(rows.pop(BACKBONE))
        if gray:
            report["gray"] = rows.pop(f"{BACKBONE}_gray")
    if baselines:
        report["baselines"] = rows
    return report


SUMMARY_COLUMNS = (
    ("scene mAP", "scene_map"),
    ("crop top-1", "crop_top1"),
    ("inst. R@1", "instance_r1"),
    ("inst. mAP", "instance_map"),
    ("inst. top-1", "instance_top1"),
)


def format_scenes(report: dict[str, Any]) -> str:
    """One row per feature kind (and its grayscale twin): every protocol's score in percent."""
    rows = {BACKBONE: report} if "scene_map" in report else {}
    if "gray" in report:
        rows["gray"] = report["gray"]
    rows.update(report.get("baselines", {}))
    columns = [(title, key) for title, key in SUMMARY_COLUMNS if key in next(iter(rows.values()))]
    lines = [f"{'features':<16}" + "".join(f"{title:>12}" for title, _ in columns)]
    lines += [
        f"{name:<16}" + "".join(f"{100 * r[key]:12.1f}" for _, key in columns)
        for name, r in rows.items()
    ]
    lines.append(
        f"{report['n_train']} train / {report['n_test']} test scenes, "
        f"{report['n_train_crops']} / {report['n_test_crops']} crops"
        + (
            f", {report['n_test_seen_crops']} test_seen crops"
            if "n_test_seen_crops" in report
            else ""
        )
    )
    return "\n".join(lines)
