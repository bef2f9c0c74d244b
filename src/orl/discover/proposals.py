"""Raw box proposals, sec. 3.1 (ii): selective search, COCO boxes (Table 5d) or imported ones.

Reproducible selective search: OpenCV orders its proposals by `rand() * hierarchy level` with the
C library's `rand()`, unseeded in the authors' runs. We seed libc (`srand`, through ctypes) right
before `process()`, with OpenCV limited to one thread in that process, so one image always yields
the same list in the same order, whichever run, rank or worker process computes it. The seed mixes
`ss_seed` with the image's relative path, so it does not depend on sharding.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from orl.artifacts import atomic_save_npy, atomic_write_bytes
from orl.data.decode import UnusableImage
from orl.data.exif_boxes import image_frames, to_displayed
from orl.data.sources import ImageList, decode_at, split_coco_spec
from orl.discover.store import offsets_of

_LIBC = ctypes.CDLL(None)


class ProposalFileError(ValueError):
    """An imported proposal file that does not fit the data set; one line naming the file."""


@dataclass(frozen=True)
class SearchTask:
    path: str  # the image file, or the shard holding it (`offset` >= 0)
    seed: int
    mode: str
    max_side: int
    offset: int = -1
    size: int = 0


def image_seed(relpath: str, base_seed: int) -> int:
    """A 31-bit libc seed from the image's relative path (glibc maps seed 0 to 1)."""
    return zlib.crc32(f"{base_seed}\t{relpath}".encode()) & 0x7FFFFFFF


def selective_search(task: SearchTask) -> np.ndarray:
    """(P, 4) int32 xywh proposals in original (EXIF-rotated) pixels, OpenCV's order.

    Raises UnusableImage for files the decoder refuses.
    """
    decoded = decode_at(task.path, task.offset, task.size, max_side=task.max_side or None)
    img, frame = decoded.image, decoded.frame
    bgr = np.ascontiguousarray(np.asarray(img)[:, :, ::-1])
    cv2.setNumThreads(1)  # the seeded rand() sequence must be consumed by one thread only
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(bgr)
    if task.mode == "fast":
        ss.switchToSelectiveSearchFast()
    else:
        ss.switchToSelectiveSearchQuality()
    _LIBC.srand(ctypes.c_uint(task.seed))
    rects = np.asarray(ss.process(), dtype=np.float64).reshape(-1, 4)
    return scale_boxes(rects, img.size, frame)


def scale_boxes(rects: np.ndarray, seen: tuple[int, int], frame: tuple[int, int]) -> np.ndarray:
    """Map xywh boxes from an image of size `seen` to `frame` pixels (rounded, clipped)."""
    sx, sy = frame[0] / seen[0], frame[1] / seen[1]
    x1 = np.clip(np.round(rects[:, 0] * sx), 0, frame[0])
    y1 = np.clip(np.round(rects[:, 1] * sy), 0, frame[1])
    x2 = np.clip(np.round((rects[:, 0] + rects[:, 2]) * sx), 0, frame[0])
    y2 = np.clip(np.round((rects[:, 1] + rects[:, 3]) * sy), 0, frame[1])
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1).astype(np.int32)


def _search_or_none(task: SearchTask) -> np.ndarray | None:
    try:
        return selective_search(task)
    except UnusableImage:
        return None


def search_many(tasks: Sequence[SearchTask], workers: int) -> Iterator[np.ndarray | None]:
    """Selective search over `tasks`, in order, on `workers` processes (None = undecodable).

    Workers are spawned (not forked) so that no OpenCV or torch thread state is inherited.
    """
    if workers <= 1 or len(tasks) <= 1:
        yield from (_search_or_none(t) for t in tasks)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap(_search_or_none, tasks, chunksize=1)


def default_workers(world_size: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, world_size))


def coco_gt_boxes(images: ImageList) -> list[np.ndarray]:
    """Instance boxes (non-crowd, annotation order, rounded xywh) per image (Table 5d)."""
    by_image: dict[tuple[int, int], list[list[float]]] = defaultdict(list)
    for k, spec in enumerate(images.sources):
        json_path, _ = split_coco_spec(spec)
        if json_path.suffix != ".json":
            raise ProposalFileError(f"{spec}: boxes=coco-gt needs COCO json data sources")
        with json_path.open(encoding="utf-8") as f:
            anns = json.load(f).get("annotations", [])
        for a in anns:
            if not a.get("iscrowd", 0):
                by_image[(k, int(a["image_id"]))].append(a["bbox"])
    out = []
    for i in range(len(images)):
        key = (int(images.source_index[i]), int(images.coco_ids[i]))
        b = np.round(np.asarray(by_image.get(key, []), dtype=np.float64)).reshape(-1, 4)
        out.append(b.astype(np.int32))
    return out


def write_proposal_file(raw: Sequence[np.ndarray], images: ImageList, out: Path) -> None:
    """Save raw proposals for `images` as a folder `boxes=file` reads (after import-proposals)."""
    out.mkdir(parents=True, exist_ok=True)
    flat = np.concatenate([np.asarray(b, np.int32).reshape(-1, 4) for b in raw])
    atomic_save_npy(flat, out / "raw_boxes.npy")
    atomic_save_npy(offsets_of([len(b) for b in raw]), out / "raw_offsets.npy")
    meta = {"fingerprint": images.fingerprint, "num_images": len(images)}
    atomic_write_bytes(json.dumps(meta).encode(), out / "meta.json")


def read_proposal_file(folder: Path, images: ImageList) -> list[np.ndarray]:
    """Raw proposals from `write_proposal_file`, checked against the data-set fingerprint."""
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        raise ProposalFileError(
            f"{folder}: no imported proposals here; create it with `orl corr import-proposals`"
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("fingerprint") != images.fingerprint:
        raise ProposalFileError(
            f"{folder}: proposals were imported for another data set; re-import with this --data"
        )
    flat = np.load(folder / "raw_boxes.npy")
    off = np.load(folder / "raw_offsets.npy")
    return [flat[off[i] : off[i + 1]] for i in range(len(images))]


def parse_authors_proposals(path: Path, images: ImageList) -> list[np.ndarray]:
    """The authors' raw proposals JSON `{"bbox": [[[x, y, w, h], ...] per image]}`, boxes moved
    from each photo's stored pixel frame to the displayed one (`data/exif_boxes.py`)."""
    try:
        with path.open(encoding="utf-8") as f:
            per_image = json.load(f)["bbox"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ProposalFileError(f"{path}: not an authors' proposal file ({exc})") from exc
    if len(per_image) != len(images):
        raise ProposalFileError(
            f"{path}: has {len(per_image)} images but the data set has {len(images)}; "
            "pass the --data it was made for, in the same order"
        )
    frames = image_frames(images)
    return [
        to_displayed(np.round(np.asarray(b, np.float64)).reshape(-1, 4), frame).astype(np.int32)
        for b, frame in zip(per_image, frames, strict=True)
    ]
