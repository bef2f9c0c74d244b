"""The layout of a scene-benchmark folder ``DIR``, which the evaluation and training code read.

::

    DIR/train/000000.png ...  DIR/test/000000.png ...           RGB scenes, size x size
    DIR/annotations/instances_train.json, instances_test.json   COCO (see ``write_split``)
    DIR/train_labels.csv, DIR/test_labels.csv                   ``file,labels``, file from DIR
    DIR/meta.json, DIR/LICENSES.md
    DIR/.cache/complete.json                                    settings fingerprint, finished flag

With this layout ``DIR/annotations/instances_<split>.json`` is an ``orl`` data source as it is: its
images resolve to ``DIR/<split>`` in the JSON's order. Every file is written atomically.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from orl.artifacts import atomic_write_text
from orl.data.scenes.catalogue import ScenesError
from orl.data.scenes.compose import PlacedObject

FORMAT_VERSION = 1  # bump when the layout or the generation changes: old stamps stop matching
SPLITS = ("train", "test")
# Optional third split: new scenes (test backgrounds) of the TRAIN object instances, for the
# instance protocol (the same object recognised across scenes, sec. 3.1 "Stage 3" inter-RoI).
SEEN_SPLIT = "test_seen"
OUTPUTS = (
    "train",
    "test",
    SEEN_SPLIT,
    "annotations",
    "train_labels.csv",
    "test_labels.csv",
    f"{SEEN_SPLIT}_labels.csv",
    "meta.json",
    "LICENSES.md",
)

SceneRecord = tuple[int, list[dict[str, Any]]]  # background id, annotations without ids


def image_dir(out_dir: Path, split: str) -> Path:
    """``DIR/<split>``: the scene images of a split."""
    return Path(out_dir) / split


def instances_json(out_dir: Path, split: str) -> Path:
    """``DIR/annotations/instances_<split>.json``."""
    return Path(out_dir) / "annotations" / f"instances_{split}.json"


def coco_annotation(obj: PlacedObject) -> dict[str, Any]:
    """One object: ``bbox`` is the VISIBLE box, ``segmentation`` the RLE of the visible mask."""
    rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
    return {
        "category_id": obj.category + 1,
        "bbox": [float(v) for v in obj.visible_box],
        "full_bbox": [float(v) for v in obj.full_box],
        "area": obj.area,
        "full_area": obj.pixels,
        "visible_fraction": obj.visible_fraction,
        "instance_id": obj.instance_id,
        "iscrowd": 0,
        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
    }


def write_split(
    out_dir: Path,
    split: str,
    records: Sequence[SceneRecord],
    categories: Sequence[str],
    background_names: Mapping[int, str],
    size: int,
) -> int:
    """Write the COCO json and the labels csv of a split; return its number of objects."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    labels = io.StringIO()
    writer = csv.writer(labels, lineterminator="\n")
    writer.writerow(["file", "labels"])
    for index, (background_id, objects) in enumerate(records):
        file_name = f"{index:06d}.png"
        images.append(
            {
                "id": index + 1,
                "file_name": file_name,
                "width": size,
                "height": size,
                "background": background_names[background_id],
                "background_id": background_id,
            }
        )
        for obj in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, **obj})
        present = sorted({obj["category_id"] for obj in objects})
        writer.writerow([f"{split}/{file_name}", " ".join(categories[c - 1] for c in present)])
    doc = {
        "info": {"description": f"orl scenes, {split} split", "version": str(FORMAT_VERSION)},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(categories)],
    }
    atomic_write_text(json.dumps(doc, separators=(",", ":")), instances_json(out_dir, split))
    atomic_write_text(labels.getvalue(), out_dir / f"{split}_labels.csv")
    return len(annotations)


def fingerprint(settings: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _stamp(out_dir: Path) -> Path:
    return out_dir / ".cache" / "complete.json"


def finished_build(out_dir: Path, settings: Mapping[str, object]) -> bool:
    """True if ``out_dir`` holds a finished build with these settings, False if it holds a partial
    one or nothing but a ``.cache`` folder; ``ScenesError`` for anything else."""
    stamp = _stamp(out_dir)
    if stamp.is_file():
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
        if recorded.get("fingerprint") != fingerprint(settings):
            old = recorded.get("settings", {})
            changed = [
                f"{k} {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v
            ]
            raise ScenesError(
                f"{out_dir} holds scenes built with other settings ({'; '.join(changed)}); "
                "choose another folder or delete it"
            )
        return bool(recorded.get("complete"))
    if out_dir.is_dir() and any(p.name != ".cache" for p in out_dir.iterdir()):
        raise ScenesError(f"{out_dir} is not empty and holds no scene set; choose an empty folder")
    return False


def start_build(out_dir: Path, settings: Mapping[str, object]) -> None:
    """Remove what an interrupted build with these settings left, and mark the build unfinished."""
    for name in OUTPUTS:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    mark_finished(out_dir, settings, complete=False)


def mark_finished(out_dir: Path, settings: Mapping[str, object], complete: bool = True) -> None:
    record = {"fingerprint": fingerprint(settings), "settings": settings, "complete": complete}
    atomic_write_text(json.dumps(record, indent=1), _stamp(out_dir))
