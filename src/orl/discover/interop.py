"""The authors' correspondence JSON (sec. 3.1 (iii), "we save the nearest-neighbor image id and
bounding box coordinate information of each corresponding pair"), both ways.

Schema: `{"info": {...}, "images": {"file_name": [...], "id": [...]}, "pseudo_annotations":
{"image_id": [...], "bbox": [[[x, y, w, h], ...] per image], "knn_image_id": [[0-based
positions] per image], "knn_bbox_pair": [[[[qx, qy, qw, qh, kx, ky, kw, kh], ...] per neighbour]
per image]}}`. `images.id` is the COCO id where the data set has one, else the position. We add
`pseudo_annotations.knn_bbox_pair_sim` (ignored by their loader) and `info.orl` (our meta and
flags) so that export followed by import gives back the same store.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from orl.artifacts import atomic_open
from orl.data.sources import ImageList
from orl.discover.store import (
    CorrespondenceStore,
    StoreMismatch,
    offsets_of,
    write_store_arrays,
)

_COMPUTED = ("format", "version", "num_images", "k", "total_boxes", "total_pairs")


class AuthorsJsonError(ValueError):
    """A correspondence JSON that does not fit; one line naming the file."""


def _write_list(f: TextIO, key: str, rows: Any, last: bool = False) -> None:
    """Stream one list of the schema row by row: COCO-sized exports never sit in memory."""
    f.write(f'"{key}": [')
    for n, row in enumerate(rows):
        f.write(("," if n else "") + json.dumps(row, separators=(",", ":")))
    f.write("]" if last else "], ")


def export_authors_json(store: CorrespondenceStore, images: ImageList, out: Path) -> None:
    """Write `store` in the authors' schema to `out` (streamed, then renamed into place)."""
    if images.fingerprint != store.fingerprint:
        raise StoreMismatch(f"{store.path}: the --data given is not the data set of this store")
    n, k = store.num_images, store.k
    flags = store.array("flags")
    info = {
        "orl": {
            "meta": {key: v for key, v in store.meta.items() if key not in _COMPUTED},
            "flags": {str(i): int(flags[i]) for i in np.flatnonzero(flags)},
        }
    }
    ids = [int(c) if c >= 0 else i for i, c in enumerate(images.coco_ids.tolist())]
    with atomic_open(out) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8")
        f.write('{"info": ' + json.dumps(info) + ', "images": {')
        _write_list(f, "file_name", (images.relpath(i) for i in range(n)))
        _write_list(f, "id", ids, last=True)
        f.write('}, "pseudo_annotations": {')
        _write_list(f, "image_id", ids)
        _write_list(f, "bbox", (store.boxes(i).tolist() for i in range(n)))
        _write_list(f, "knn_image_id", (store.neighbours(i).tolist() for i in range(n)))
        pairs = ([store.pairs(i, j).tolist() for j in range(k)] for i in range(n))
        _write_list(f, "knn_bbox_pair", pairs)
        sims = ([store.pair_sims(i, j).tolist() for j in range(k)] for i in range(n))
        _write_list(f, "knn_bbox_pair_sim", sims, last=True)
        f.write("}}\n")
        f.detach()  # flushes; atomic_open then syncs, closes and renames the file


def _index_of(boxes: np.ndarray) -> dict[tuple[int, ...], int]:
    index: dict[tuple[int, ...], int] = {}
    for b, box in enumerate(boxes.tolist()):
        index.setdefault(tuple(box), b)
    return index


def import_authors_json(src: Path, images: ImageList, out: Path) -> None:
    """Build a store from an authors' JSON; its file names must be this data set's, in order."""
    try:
        with src.open(encoding="utf-8") as f:
            doc = json.load(f)
        names = doc["images"]["file_name"]
        ann = doc["pseudo_annotations"]
        per_boxes, knn, pairs = ann["bbox"], ann["knn_image_id"], ann["knn_bbox_pair"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AuthorsJsonError(f"{src}: not an authors' correspondence JSON ({exc})") from exc
    relpaths = [images.relpath(i) for i in range(len(images))]
    if list(names) != relpaths:
        raise StoreMismatch(
            f"{src}: its file names are not the --data images in order; pass the data set "
            "(same files, same order) it was made for"
        )
    boxes = [np.asarray(b, np.int64).reshape(-1, 4) for b in per_boxes]
    neighbours = np.asarray(knn, np.int64)
    k = neighbours.shape[1]
    lookups = [_index_of(b) for b in boxes]
    index: list[np.ndarray] = []
    for q in range(len(boxes)):
        for j in range(k):
            rows = np.asarray(pairs[q][j], np.int64).reshape(-1, 8)
            nb = int(neighbours[q, j])
            try:
                idx = [(lookups[q][tuple(r[:4])], lookups[nb][tuple(r[4:])]) for r in rows.tolist()]
            except KeyError as exc:
                raise AuthorsJsonError(
                    f"{src}: pair box {list(exc.args[0])} of image {q} is not in the bbox lists"
                ) from exc
            index.append(np.asarray(idx, np.int64).reshape(-1, 2))
    sim_rows = ann.get("knn_bbox_pair_sim")
    sims = (
        np.concatenate([np.asarray(s, np.float32) for row in sim_rows for s in row])
        if sim_rows is not None
        else np.full(sum(len(i) for i in index), np.nan, np.float32)
    )
    orl = doc.get("info", {}).get("orl", {})
    flags = np.zeros(len(boxes), np.uint8)
    for i, v in orl.get("flags", {}).items():
        flags[int(i)] = v
    meta = {"fingerprint": images.fingerprint, **orl.get("meta", {})}
    meta["fingerprint"] = images.fingerprint
    try:
        write_store_arrays(
            out,
            boxes=np.concatenate(boxes),
            box_offsets=offsets_of([len(b) for b in boxes]),
            neighbours=neighbours,
            pair_index=np.concatenate(index),
            pair_offsets=offsets_of([len(i) for i in index]),
            pair_sims=sims,
            flags=flags,
            meta=meta,
        )
    except ValueError as exc:
        raise AuthorsJsonError(f"{src}: {exc}") from exc
