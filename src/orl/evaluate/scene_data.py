"""One split of a scene benchmark folder (`orl scenes DIR`, docs/scenes.md), read for the
evaluations: image order, sizes, and every object's category, instance and visible box.

Layout read: `DIR/annotations/instances_<split>.json` (COCO) with its images in `DIR/<split>/`.
The image order is the data source's (`orl.data.sources`: the JSON's `images` order), so that
position i here is image i of a stage-2 store built on the same split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orl.data.decode import UnusableImage, load_rgb
from orl.data.sources import ImageList, resolve_sources
from orl.evaluate.inputs import EvalInputError


@dataclass(frozen=True)
class SceneSplit:
    """Images of one split and their objects as flat arrays (one row per object).

    `obj_box` is the VISIBLE box, xywh in float pixels; `obj_category` indexes `categories`
    (category names in the order of their COCO ids).
    """

    name: str
    images: ImageList
    widths: np.ndarray
    heights: np.ndarray
    categories: tuple[str, ...]
    obj_image: np.ndarray
    obj_box: np.ndarray
    obj_category: np.ndarray
    obj_instance: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def image_labels(self) -> list[list[str]]:
        """Per image, the sorted names of the categories of its objects."""
        out: list[set[str]] = [set() for _ in range(len(self))]
        for i, c in zip(self.obj_image.tolist(), self.obj_category.tolist(), strict=True):
            out[i].add(self.categories[c])
        return [sorted(s) for s in out]


def annotation_file(scenes_dir: Path, split: str) -> Path:
    """`DIR/annotations/instances_<split>.json`; a one-line EvalInputError when it is missing."""
    path = Path(scenes_dir) / "annotations" / f"instances_{split}.json"
    if not path.is_file():
        raise EvalInputError(
            f"{path}: not found; pass --scenes the folder `orl scenes DIR` wrote (split '{split}')"
        )
    return path


def has_split(scenes_dir: Path, split: str) -> bool:
    """Whether the folder holds this split's annotations (`test_seen` is optional)."""
    return (Path(scenes_dir) / "annotations" / f"instances_{split}.json").is_file()


def read_scene_split(scenes_dir: Path, split: str) -> SceneSplit:
    """Read one split: its images as a data source (same order and fingerprint as stage 2 sees
    with the source `DIR/annotations/instances_<split>.json`) and its non-crowd objects."""
    path = annotation_file(scenes_dir, split)
    images = resolve_sources([str(path)])
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        cats = sorted((int(c["id"]), str(c["name"])) for c in doc["categories"])
        sizes = np.array([(int(im["width"]), int(im["height"])) for im in doc["images"]])
        anns = [a for a in doc["annotations"] if not a.get("iscrowd", 0)]
        position = {int(c): i for i, c in enumerate(images.coco_ids.tolist())}
        cat_index = {cid: k for k, (cid, _) in enumerate(cats)}
        obj_image = np.array([position[int(a["image_id"])] for a in anns], dtype=np.int64)
        obj_category = np.array([cat_index[int(a["category_id"])] for a in anns], dtype=np.int64)
        obj_box = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        obj_instance = np.array([int(a["instance_id"]) for a in anns], dtype=np.int64)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EvalInputError(
            f"{path}: not a scene annotation file ({type(exc).__name__}: {exc}); regenerate it "
            "with `orl scenes`"
        ) from exc
    return SceneSplit(
        name=split,
        images=images,
        widths=sizes[:, 0],
        heights=sizes[:, 1],
        categories=tuple(name for _, name in cats),
        obj_image=obj_image,
        obj_box=obj_box,
        obj_category=obj_category,
        obj_instance=obj_instance,
    )


def decode_scenes(split: SceneSplit) -> np.ndarray:
    """Every image of the split as one (N, H, W, 3) uint8 array (scenes share one size).

    Decoded once and kept in memory (3,000 scenes of 128 px are 147 MB): whole-scene features,
    object crops and the hand-crafted baselines all read from it.
    """
    first = split.images.path(0)
    out: np.ndarray | None = None
    for i in range(len(split)):
        path = split.images.path(i)
        try:
            pixels = np.asarray(load_rgb(path))
        except UnusableImage as exc:
            raise EvalInputError(f"{path}: {exc}; regenerate the scenes") from exc
        if out is None:
            out = np.empty((len(split), *pixels.shape), dtype=np.uint8)
        if pixels.shape != out.shape[1:]:
            raise EvalInputError(
                f"{path}: {pixels.shape[1]}x{pixels.shape[0]} px, but {first} is "
                f"{out.shape[2]}x{out.shape[1]}; scenes of one benchmark share one size"
            )
        out[i] = pixels
    assert out is not None  # a data source is never empty
    return out
