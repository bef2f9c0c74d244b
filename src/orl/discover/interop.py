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
from orl.data.exif_boxes import image_frames, to_displayed, to_stored
from orl.data.sources import ImageList
from orl.discover.authors_json import AuthorsJsonError, read_authors_json
from orl.discover.store import (
    CorrespondenceStore,
    StoreMismatch,
    offsets_of,
    write_store_arrays,
)

_COMPUTED = ("format", "version", "num_images", "k", "total_boxes", "total_pairs")


def _write_list(f: TextIO, key: str, rows: Any, last: bool = False) -> None:
    """Stream one list of the schema row by row: COCO-sized exports never sit in memory."""
    f.write(f'"{key}": [')
    for n, row in enumerate(rows):
        f.write(("," if n else "") + json.dumps(row, separators=(",", ":")))
    f.write("]" if last else "], ")


def export_authors_json(store: CorrespondenceStore, images: ImageList, out: Path) -> None:
    """Write `store` in the authors' schema to `out` (streamed, then renamed into place), boxes
    in each photo's stored pixel frame as the authors' code reads them (`data/exif_boxes.py`)."""
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
    frames = image_frames(images)  # the authors' boxes are in the stored frame, ours displayed

    def boxes(i: int) -> Any:  # nested lists of ints
        return to_stored(store.boxes(i), frames[i]).tolist()

    def pairs(i: int, j: int) -> Any:
        p, nb = store.pairs(i, j), int(store.neighbours(i)[j])
        return np.concatenate(
            [to_stored(p[:, :4], frames[i]), to_stored(p[:, 4:], frames[nb])], axis=1
        ).tolist()

    with atomic_open(out) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8")
        f.write('{"info": ' + json.dumps(info) + ', "images": {')
        _write_list(f, "file_name", (images.relpath(i) for i in range(n)))
        _write_list(f, "id", ids, last=True)
        f.write('}, "pseudo_annotations": {')
        _write_list(f, "image_id", ids)
        _write_list(f, "bbox", (boxes(i) for i in range(n)))
        _write_list(f, "knn_image_id", (store.neighbours(i).tolist() for i in range(n)))
        _write_list(f, "knn_bbox_pair", ([pairs(i, j) for j in range(k)] for i in range(n)))
        sims = ([store.pair_sims(i, j).tolist() for j in range(k)] for i in range(n))
        _write_list(f, "knn_bbox_pair_sim", sims, last=True)
        f.write("}}\n")
        f.detach()  # flushes; atomic_open then syncs, closes and renames the file


def import_authors_json(src: Path, images: ImageList, out: Path, force: bool = False) -> None:
    """Build a store from an authors' JSON; its file names must be this data set's, in order.
    Its boxes are in each photo's stored pixel frame and become displayed-frame boxes.

    An existing store in `out` is replaced only with `force`; the file is read and checked whole
    (streamed) before anything is written.
    """
    refuse_existing_store(out, force)
    corr = read_authors_json(src, images)
    frames = image_frames(images)
    displayed = [to_displayed(b, frame) for b, frame in zip(corr.boxes, frames, strict=True)]
    try:
        write_store_arrays(
            out,
            boxes=np.concatenate(displayed),
            box_offsets=offsets_of([len(b) for b in corr.boxes]),
            neighbours=corr.neighbours,
            pair_index=corr.pair_index,
            pair_offsets=offsets_of(corr.pair_counts),
            pair_sims=corr.pair_sims,
            flags=corr.flags,
            meta={**corr.meta, "fingerprint": images.fingerprint},
        )
    except ValueError as exc:
        raise AuthorsJsonError(f"{src}: {exc}") from exc


def refuse_existing_store(out: Path, force: bool) -> None:
    """A one-line error unless `out` is a new or empty folder (or `force` says replace it)."""
    if out.exists() and not out.is_dir():
        raise AuthorsJsonError(f"{out}: is a file; pass a folder for the store")
    if not force and out.is_dir() and any(out.iterdir()):
        raise AuthorsJsonError(
            f"{out}: already holds files (a correspondence store?); pass --force to replace "
            "them, or choose a new folder"
        )
