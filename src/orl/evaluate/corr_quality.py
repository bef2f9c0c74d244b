"""Stage 2 scored against the scene benchmark's ground truth (docs/scenes.md).

The paper's premise (sec. 3.1): the kept RoIs (ii) are object-like, and the inter-image RoI pairs
(iii) show the same kind of object. With every object's visible box, category and instance known,
both are measured directly:
- RoIs: the share of kept boxes with IoU >= 0.5 with some visible object box of their image, and
  the share of objects recalled by at least one kept box;
- pairs: each box is matched to its best-IoU object (IoU >= 0.5, ties to the first object); the
  share of pairs whose two boxes both match objects, match objects of the same category, and of
  the same instance (same category and `instance_id`);
- the same pair shares for two chance references: (a) a box drawn uniformly from each image's
  kept boxes, as an exact expectation (no sampling noise), and (b) a box of the stored box's size
  placed uniformly at random in the image (seeded sampling);
- the image kNN (i): the share of neighbours sharing a category with the query, against the
  exact share for a neighbour drawn uniformly from the other images.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from scipy import sparse
from torchvision.ops import box_iou

from orl.discover.store import FLAG_SKIPPED, CorrespondenceStore
from orl.evaluate.inputs import EvalInputError
from orl.evaluate.scene_data import SceneSplit, read_scene_split
from orl.progress import progress

IOU_MIN = 0.5


def _share(mask: np.ndarray) -> float:
    """Mean of a boolean array; 0 when it is empty (no box, pair or object to count)."""
    return float(mask.mean()) if mask.size else 0.0


def xyxy(boxes: np.ndarray) -> np.ndarray:
    """(M, 4) xywh -> float64 x1, y1, x2, y2."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def _groups(owner: np.ndarray, n: int) -> list[np.ndarray]:
    """Row indices per image 0..n-1, in row order."""
    order = np.argsort(owner, kind="stable")
    return np.split(order, np.cumsum(np.bincount(owner, minlength=n))[:-1])


def _iou_blocks(
    boxes: np.ndarray, owner: np.ndarray, truth: SceneSplit, desc: str
) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """Per image with boxes and objects: (box rows, object rows, IoU matrix)."""
    n = len(truth)
    gt = torch.from_numpy(xyxy(truth.obj_box))
    candidates = torch.from_numpy(xyxy(boxes))
    groups = zip(_groups(owner, n), _groups(truth.obj_image, n), strict=True)
    for rows, objs in progress(groups, total=n, desc=desc, unit="img"):
        if len(rows) and len(objs):
            yield rows, objs, box_iou(candidates[rows], gt[objs])


def best_objects(
    boxes: np.ndarray, owner: np.ndarray, truth: SceneSplit, desc: str = "boxes to objects"
) -> np.ndarray:
    """For each xywh box of image `owner`: its best-IoU object (row of `truth`), -1 below 0.5."""
    match = np.full(len(boxes), -1, dtype=np.int64)
    for rows, objs, iou in _iou_blocks(boxes, owner, truth, desc):
        best, arg = iou.max(dim=1)
        hit = (best >= IOU_MIN).numpy()
        match[rows[hit]] = objs[arg.numpy()[hit]]
    return match


def objects_recalled(boxes: np.ndarray, owner: np.ndarray, truth: SceneSplit) -> np.ndarray:
    """For each object: does some box of its image reach IoU >= 0.5 with it."""
    hit = np.zeros(len(truth.obj_image), dtype=bool)
    for _, objs, iou in _iou_blocks(boxes, owner, truth, "objects recalled"):
        hit[objs] = (iou.max(dim=0).values >= IOU_MIN).numpy()
    return hit


def _instance_keys(truth: SceneSplit) -> np.ndarray:
    """One integer per (category, instance_id): instances are compared within a category."""
    pairs = np.stack([truth.obj_category, truth.obj_instance], axis=1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)


def pair_shares(left: np.ndarray, right: np.ndarray, truth: SceneSplit) -> dict[str, float]:
    """Shares of pairs (matched objects per side, -1 = none) on objects, same category, instance."""
    both = (left >= 0) & (right >= 0)
    cat, inst = truth.obj_category, _instance_keys(truth)
    a, b = left[both], right[both]
    same_category, same_instance = np.zeros_like(both), np.zeros_like(both)
    same_category[both] = cat[a] == cat[b]
    same_instance[both] = inst[a] == inst[b]
    return {
        "both_objects": _share(both),
        "same_category": _share(same_category),
        "same_instance": _share(same_instance),
    }


def _match_shares(
    match: np.ndarray, owner: np.ndarray, keys: np.ndarray, n_keys: int, n: int
) -> sparse.csr_matrix:
    """(n, n_keys): per image, the share of its kept boxes matched to an object of each key."""
    counts = np.bincount(owner, minlength=n)
    hit = match >= 0
    data = 1.0 / counts[owner[hit]]
    return sparse.csr_matrix((data, (owner[hit], keys[match[hit]])), shape=(n, n_keys))


def expected_kept_shares(
    match: np.ndarray,
    owner: np.ndarray,
    query: np.ndarray,
    neighbour: np.ndarray,
    weight: np.ndarray,
    truth: SceneSplit,
) -> dict[str, float]:
    """Exact pair shares when each stored pair's boxes are replaced by one drawn uniformly from
    the query's and one from the neighbour's kept boxes; rows (q, neighbour) weighted by pairs."""
    n = len(truth)
    total = max(float(weight.sum()), 1.0)
    out: dict[str, float] = {}
    for name, keys in (
        ("both_objects", np.zeros(len(truth.obj_image), dtype=np.int64)),
        ("same_category", truth.obj_category),
        ("same_instance", _instance_keys(truth)),
    ):
        p = _match_shares(match, owner, keys, int(keys.max(initial=-1)) + 1, n)
        per_row = np.asarray(p[query].multiply(p[neighbour]).sum(axis=1)).reshape(-1)
        out[name] = float(per_row @ weight / total)
    return out


def random_boxes_like(
    boxes: np.ndarray, owner: np.ndarray, truth: SceneSplit, rng: np.random.Generator
) -> np.ndarray:
    """Boxes of the same sizes (capped at the image) placed uniformly at random in their image."""
    w = np.minimum(boxes[:, 2], truth.widths[owner]).astype(np.float64)
    h = np.minimum(boxes[:, 3], truth.heights[owner]).astype(np.float64)
    x = rng.uniform(0.0, 1.0, len(boxes)) * (truth.widths[owner] - w)
    y = rng.uniform(0.0, 1.0, len(boxes)) * (truth.heights[owner] - h)
    return np.stack([x, y, w, h], axis=1)


def knn_category_shares(
    neighbours: np.ndarray, usable: np.ndarray, truth: SceneSplit
) -> tuple[float, float]:
    """Share of (usable query, neighbour) sharing a category, and its expectation for a neighbour
    drawn uniformly from the other usable images (exact, by grouping images by label set)."""
    n = len(truth)
    labels = np.zeros((n, len(truth.categories)), dtype=np.int64)
    labels[truth.obj_image, truth.obj_category] = 1
    shared = (labels[:, None, :] * labels[neighbours]).sum(axis=2) > 0
    observed = _share(shared[usable])
    sets, inverse, counts = np.unique(
        labels[usable], axis=0, return_inverse=True, return_counts=True
    )
    meets = (sets @ sets.T > 0).astype(np.int64) @ counts  # usable images sharing with each set
    own = sets.any(axis=1).astype(np.int64)  # the query itself, when it has a category
    others = max(int(usable.sum()) - 1, 1)
    expected = float(np.mean((meets - own)[inverse.reshape(-1)] / others))
    return observed, expected


def open_store(corr_dir: Path, truth: SceneSplit, scenes_dir: Path) -> CorrespondenceStore:
    """The store in `corr_dir` (its arrays and meta.json sit there), checked against the split."""
    store = CorrespondenceStore.open(Path(corr_dir))
    if store.fingerprint != truth.images.fingerprint:
        raise EvalInputError(
            f"{corr_dir}: store was built on data set {store.fingerprint[:12]}, but split "
            f"'{truth.name}' of {scenes_dir} is {truth.images.fingerprint[:12]}; pass the "
            "--scenes folder and --split it was built on"
        )
    return store


def score_correspondences(
    corr_dir: Path, scenes_dir: Path, split: str = "train", seed: int = 0
) -> dict[str, float]:
    """Every measure of the module docstring for the store in `corr_dir` (flat, JSON-ready)."""
    truth = read_scene_split(scenes_dir, split)
    store = open_store(corr_dir, truth, scenes_dir)
    n, k = store.num_images, store.k
    box_offsets = np.asarray(store.array("box_offsets"), dtype=np.int64)
    boxes = np.asarray(store.array("boxes"), dtype=np.int64)
    owner = np.repeat(np.arange(n), np.diff(box_offsets).astype(np.int64))
    usable = (np.asarray(store.array("flags")) & FLAG_SKIPPED) == 0  # undecodable placeholders
    neighbours = np.asarray(store.array("neighbours"), dtype=np.int64)
    pair_counts = np.diff(np.asarray(store.array("pair_offsets"), dtype=np.int64)).astype(np.int64)
    pair_index = np.asarray(store.array("pair_index"), dtype=np.int64)
    row = np.repeat(np.arange(n * k), pair_counts)
    q, nb = row // k, neighbours.reshape(-1)[row]
    kept_pair = usable[q]
    left = (box_offsets[q] + pair_index[:, 0])[kept_pair]
    right = (box_offsets[nb] + pair_index[:, 1])[kept_pair]

    kept_box = usable[owner]
    match = best_objects(boxes, owner, truth)
    recalled = objects_recalled(boxes[kept_box], owner[kept_box], truth)
    out: dict[str, float] = {
        "n_images": n,
        "k": k,
        "n_boxes": int(kept_box.sum()),
        "n_objects": int(usable[truth.obj_image].sum()),
        "n_pairs": int(kept_pair.sum()),
        "rois_on_object": _share(match[kept_box] >= 0),
        "objects_recalled": _share(recalled[usable[truth.obj_image]]),
    }
    for name, value in pair_shares(match[left], match[right], truth).items():
        out[f"pairs_{name}"] = value
    rows = np.flatnonzero(usable[np.arange(n * k) // k])
    kept_box_shares = expected_kept_shares(
        match, owner, rows // k, neighbours.reshape(-1)[rows], pair_counts[rows], truth
    )
    for name, value in kept_box_shares.items():
        out[f"random_kept_pairs_{name}"] = value
    rng = np.random.default_rng(seed)
    owners = np.concatenate([q[kept_pair], nb[kept_pair]])
    placed = random_boxes_like(np.concatenate([boxes[left], boxes[right]]), owners, truth, rng)
    placed_match = best_objects(placed, owners, truth, "random boxes to objects")
    half = len(left)
    for name, value in pair_shares(placed_match[:half], placed_match[half:], truth).items():
        out[f"random_boxes_pairs_{name}"] = value
    observed, expected = knn_category_shares(neighbours, usable, truth)
    out["knn_same_category"] = observed
    out["random_images_same_category"] = expected
    return out


def format_corr_quality(report: dict[str, float]) -> str:
    """Stored pairs against the two chance references, then RoI and kNN shares (percent)."""
    lines = [f"{'pairs (%)':<16}{'stored':>9}{'kept-rand':>11}{'box-rand':>10}"]
    for name in ("both_objects", "same_category", "same_instance"):
        lines.append(
            f"{name:<16}{100 * report[f'pairs_{name}']:9.1f}"
            f"{100 * report[f'random_kept_pairs_{name}']:11.1f}"
            f"{100 * report[f'random_boxes_pairs_{name}']:10.1f}"
        )
    lines.append(
        f"RoIs on an object {100 * report['rois_on_object']:.1f}%, objects recalled "
        f"{100 * report['objects_recalled']:.1f}% ({report['n_boxes']:.0f} RoIs, "
        f"{report['n_objects']:.0f} objects)"
    )
    lines.append(
        f"kNN neighbours sharing a category {100 * report['knn_same_category']:.1f}% "
        f"(random images {100 * report['random_images_same_category']:.1f}%)"
    )
    return "\n".join(lines)
