"""The online kNN monitor: a quality signal while pre-training runs (not one of the paper's
protocols; solo-learn and lightly have one).

Every `every_epochs` epochs the frozen online backbone embeds a small labelled set (global average
pool, as `orl eval knn`), each validation image votes with its `k` nearest training images
(`evaluate/knn.py`), and the run logs the top-1 accuracy and, for multi-label data (a COCO JSON
such as the scene benchmark's `annotations/instances_train.json`), the mAP of the vote scores.
The input and the scores are those of `orl eval knn`, so the monitor's last line equals `orl eval
knn` on the run's last checkpoint. Under DDP each rank embeds every world-size-th image and the
features are gathered, so the ranks share the work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orl import distributed
from orl.data.sources import DataSourceError, resolve_sources
from orl.evaluate.classification import image_folder
from orl.evaluate.features import center_crop_transform, extract_features, l2_normalize
from orl.evaluate.knn import knn_scores, mean_average_precision, top1_hit_rate, topk_accuracy

LAYER = "avgpool"  # `orl eval knn`'s default representation


@dataclass(frozen=True)
class MonitorConfig:
    """`monitor:` of a training config; off while `train` is unset.

    `train` and `val` are each an ImageFolder (one sub-folder per class: top-1/top-5) or a COCO
    annotation JSON (`ANN.json[:IMAGE_DIR]`, several labels per image: top-1 and mAP).
    """

    train: str | None = None
    val: str | None = None
    every_epochs: int = 10
    k: int = 20
    temperature: float = 0.07
    resize: int = 256  # resize, then centre crop: `orl eval knn`'s input
    crop: int = 224
    batch_size: int = 64

    def __post_init__(self) -> None:
        if (self.train is None) != (self.val is None):
            raise ValueError("'monitor.train' and 'monitor.val' go together: set both or neither")
        if min(self.every_epochs, self.k, self.resize, self.crop, self.batch_size) < 1:
            raise ValueError("'monitor.every_epochs', 'k', 'resize', 'crop', 'batch_size' >= 1")

    @property
    def enabled(self) -> bool:
        return self.train is not None


@dataclass(frozen=True)
class LabelledSet:
    """Images and their labels: one class index each, or an (n, classes) 0/1 matrix."""

    paths: list[Path]
    labels: np.ndarray
    classes: tuple[str, ...]

    @property
    def multi_label(self) -> bool:
        return self.labels.ndim == 2


def read_labelled(spec: str, setting: str) -> LabelledSet:
    """An ImageFolder or a COCO JSON (see MonitorConfig); errors name `setting`."""
    if ".json" in spec:
        return _read_coco_labels(spec, setting)
    path = Path(spec)
    if not path.is_dir():
        raise DataSourceError(f"{setting}={spec}: not a folder of class folders nor a COCO .json")
    folder = image_folder(path, center_crop_transform())
    paths = [Path(p) for p, _ in folder.samples]
    return LabelledSet(paths, np.asarray(folder.targets, dtype=np.int64), tuple(folder.classes))


def _read_coco_labels(spec: str, setting: str) -> LabelledSet:
    """Per image of the JSON (in its `images` order), the categories of its objects."""
    images = resolve_sources([spec])
    json_path = Path(spec.partition(".json:")[0].removesuffix(".json") + ".json")
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        categories = sorted((int(c["id"]), str(c["name"])) for c in doc["categories"])
        column = {cid: k for k, (cid, _) in enumerate(categories)}
        row = {int(i): n for n, i in enumerate(images.coco_ids.tolist())}
        labels = np.zeros((len(images), len(categories)), dtype=np.float32)
        for ann in doc.get("annotations", []):
            labels[row[int(ann["image_id"])], column[int(ann["category_id"])]] = 1.0
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataSourceError(
            f"{setting}={spec}: no usable categories and annotations ({type(exc).__name__})"
        ) from exc
    paths = [Path(images.path(i)) for i in range(len(images))]
    return LabelledSet(paths, labels, tuple(name for _, name in categories))


class Monitor:
    """The labelled sets of `cfg`, read once, and their kNN scores for a backbone."""

    def __init__(self, cfg: MonitorConfig) -> None:
        assert cfg.train is not None and cfg.val is not None
        self.cfg = cfg
        self.train = read_labelled(cfg.train, "monitor.train")
        self.val = read_labelled(cfg.val, "monitor.val")
        if self.train.classes != self.val.classes:
            raise DataSourceError(
                f"monitor.val={cfg.val}: its classes differ from monitor.train's; "
                "use two splits of one labelled set"
            )

    def due(self, step: int, steps_per_epoch: int, last_step: int) -> bool:
        """Every `every_epochs` epochs, and after the run's last step."""
        return step % (self.cfg.every_epochs * steps_per_epoch) == 0 or step == last_step

    @torch.no_grad()
    def measure(self, backbone: nn.Module, device: torch.device) -> dict[str, float]:
        """`knn_top1` (and `knn_top5`, or `knn_map` for multi-label data) of `backbone`, and the
        seconds it took (`knn_seconds`). The backbone's mode and the RNG streams are restored."""
        started = time.perf_counter()
        was_training = backbone.training
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            train = self.features(backbone, self.train.paths, device)
            val = self.features(backbone, self.val.paths, device)
        backbone.train(was_training)
        cfg = self.cfg
        n = len(self.train.classes)
        scores = knn_scores(train, self.train.labels, val, n, cfg.k, cfg.temperature)
        if self.val.multi_label:
            out = {
                "knn_top1": top1_hit_rate(scores, self.val.labels),
                "knn_map": mean_average_precision(scores, self.val.labels),
            }
        else:
            out = {f"knn_{k}": v for k, v in topk_accuracy(scores, self.val.labels).items()}
        return {**out, "knn_seconds": time.perf_counter() - started}

    def features(
        self, backbone: nn.Module, paths: Sequence[Path], device: torch.device
    ) -> np.ndarray:
        """L2-normalised pooled features of `paths`; rank r embeds paths r, r + W, ..."""
        rank, world = distributed.rank(), distributed.world_size()
        tf = center_crop_transform(self.cfg.resize, self.cfg.crop)
        mine = list(paths[rank::world])
        part = extract_features(backbone, mine, [LAYER], tf, self.cfg.batch_size, 0, device)
        parts = distributed.all_gather_objects(part.get(LAYER))  # None: a rank without images
        return l2_normalize(interleave(parts, len(paths)))


def interleave(parts: Sequence[np.ndarray | None], total: int) -> np.ndarray:
    """Rows of rank r's part (its images r, r + W, ...) back in the original order."""
    width = next(p.shape[1] for p in parts if p is not None)
    out = np.empty((total, width), dtype=np.float32)
    for r, part in enumerate(parts):
        if part is not None:
            out[r :: len(parts)] = part
    return out
