"""Reading the authors' correspondence JSON (sec. 3.1 (iii)) one element at a time, every field
checked against the schema (see `discover/interop.py` for the schema).

The file is streamed (`discover/json_stream.py`): memory holds one image's element of the text
at a time plus the compact arrays being built, not the whole document. A field that does not fit
raises `AuthorsJsonError` with one line naming the file, the image and the field. Columns may come
in any order except that `knn_bbox_pair` must follow `bbox` and `knn_image_id` (its boxes are
looked up in them as they stream past) and `knn_bbox_pair_sim` must follow `knn_bbox_pair`; the
authors' files and ours are written in that order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orl.data.sources import ImageList
from orl.discover.json_stream import JsonReader, JsonStreamError
from orl.discover.store import FLAG_FALLBACK, FLAG_SKIPPED, StoreMismatch

_MAX_COORD = 1 << 30  # larger box coordinates are not pixels of any image
_FLAGS = FLAG_SKIPPED | FLAG_FALLBACK


class AuthorsJsonError(ValueError):
    """A correspondence JSON that does not fit; one line naming the file, image and field."""


@dataclass(frozen=True)
class AuthorsCorrespondences:
    """What an authors' JSON holds, as compact arrays; boxes in the file's pixel frame."""

    boxes: list[np.ndarray]  # per image (B_i, 4) int64 xywh
    neighbours: np.ndarray  # (N, K) int64 positions
    pair_index: np.ndarray  # (total_pairs, 2) int64 indices into the two images' boxes
    pair_counts: np.ndarray  # (N * K,) pairs of each (image, neighbour), row q * K + j
    pair_sims: np.ndarray  # (total_pairs,) float32, NaN where the file has none
    flags: np.ndarray  # (N,) uint8
    meta: dict[str, Any]


class _Parser:
    def __init__(self, src: Path, images: ImageList, reader: JsonReader) -> None:
        self.src = src
        self.reader = reader
        self.n = len(images)
        self.names = [images.relpath(i) for i in range(self.n)]
        self.seen: set[str] = set()
        self.boxes: list[np.ndarray] = []
        self.neighbours = np.zeros((0, 0), np.int64)
        self.pair_index: list[np.ndarray] = []
        self.pair_counts = np.zeros((0, 0), np.int64)
        self.pair_sims: list[np.ndarray] = []
        self.flags = np.zeros(self.n, np.uint8)
        self.meta: dict[str, Any] = {}
        self.raw_flags: dict[str, Any] = {}

    def fail(self, where: str, what: str, image: int | None = None) -> AuthorsJsonError:
        if image is not None:
            name = f" ({self.names[image]})" if image < self.n else ""
            where = f"image {image}{name}: {where}"
        return AuthorsJsonError(f"{self.src}: {where}: {what}")

    def expect(self, kind: str, where: str) -> None:
        if self.reader.peek_kind() != kind:
            article = "an" if kind[0] in "aeiou" else "a"
            raise self.fail(where, f"must be {article} {kind}")

    def column(self, where: str, parse: Any) -> None:
        """One list with an entry per image: `parse(i, value)` each, then check the count."""
        self.expect("array", where)
        count = 0
        for i in self.reader.items():
            if i >= self.n:
                raise self.count_error(where, f"more entries than the {self.n} images of --data")
            parse(i, self.reader.value())
            count += 1
        if count != self.n:
            raise self.count_error(where, f"{count} entries but --data has {self.n} images")
        self.seen.add(where)

    def count_error(self, where: str, what: str) -> ValueError:
        if where == "images.file_name":  # the file lists another data set
            return StoreMismatch(
                f"{self.src}: {where} has {what}; pass the data set (same files, same order) "
                "it was made for"
            )
        return self.fail(where, f"has {what}")

    def document(self) -> None:
        self.expect("object", "the top level")
        for key in self.reader.members():
            if key == "info":
                self.info()
            elif key in ("images", "pseudo_annotations"):
                self.section(key)
            else:
                self.reader.skip()
        self.reader.end()
        for needed in (
            "images.file_name",
            "pseudo_annotations.bbox",
            "pseudo_annotations.knn_image_id",
            "pseudo_annotations.knn_bbox_pair",
        ):
            if needed not in self.seen:
                raise self.fail(needed, "missing")
        self.check_flags()

    def section(self, name: str) -> None:
        self.expect("object", name)
        parsers = {
            "images.file_name": self.file_name,
            "images.id": self.image_id,
            "pseudo_annotations.image_id": self.image_id,
            "pseudo_annotations.bbox": self.bbox,
            "pseudo_annotations.knn_image_id": self.knn_image_id,
            "pseudo_annotations.knn_bbox_pair": self.knn_bbox_pair,
            "pseudo_annotations.knn_bbox_pair_sim": self.knn_bbox_pair_sim,
        }
        for key in self.reader.members():
            where = f"{name}.{key}"
            if where in parsers:
                self.before(where)
                self.column(where, lambda i, v, w=where: parsers[w](i, v, w))
            else:
                self.reader.skip()

    def before(self, where: str) -> None:
        """The columns a column is checked against must have been read already."""
        needs = {
            "pseudo_annotations.knn_bbox_pair": (
                "pseudo_annotations.bbox",
                "pseudo_annotations.knn_image_id",
            ),
            "pseudo_annotations.knn_bbox_pair_sim": ("pseudo_annotations.knn_bbox_pair",),
        }
        for earlier in needs.get(where, ()):
            if earlier not in self.seen:
                raise self.fail(where, f"must come after {earlier} in the file")

    def file_name(self, i: int, value: Any, where: str) -> None:
        if not isinstance(value, str):
            raise self.fail(where, f"must be a string, got {type(value).__name__}", i)
        if value != self.names[i]:
            raise StoreMismatch(
                f"{self.src}: image {i} is {value!r} but --data has {self.names[i]!r} there; "
                "pass the data set (same files, same order) it was made for"
            )

    def image_id(self, i: int, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"must be an integer, got {value!r}", i)

    def numbers(self, value: Any, width: int, where: str, i: int) -> np.ndarray:
        """`value` as an (M, width) int64 array of pixel coordinates, M >= 1."""
        try:
            arr = np.asarray(value)
        except ValueError:  # ragged
            arr = np.asarray([], dtype=object)
        if arr.dtype.kind not in "iuf" or arr.ndim != 2 or arr.shape[1] != width or not len(arr):
            raise self.fail(where, f"must be a non-empty list of [{width} numbers] rows", i)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise self.fail(where, "holds a NaN or infinite coordinate", i)
        if arr.min() < 0 or arr.max() >= _MAX_COORD:
            raise self.fail(where, f"coordinates must lie in [0, {_MAX_COORD})", i)
        return np.round(arr).astype(np.int64)

    def bbox(self, i: int, value: Any, where: str) -> None:
        self.boxes.append(self.numbers(value, 4, where, i))

    def knn_image_id(self, i: int, value: Any, where: str) -> None:
        if not isinstance(value, list) or not value:
            raise self.fail(where, "must be a non-empty list of neighbour positions", i)
        if not self.neighbours.size:
            self.neighbours = np.zeros((self.n, len(value)), np.int64)
        k = self.neighbours.shape[1]
        if len(value) != k:
            raise self.fail(where, f"has {len(value)} neighbours, image 0 has {k}", i)
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < self.n:
                raise self.fail(where, f"neighbour {v!r} is not a position in 0..{self.n - 1}", i)
        self.neighbours[i] = value

    def knn_bbox_pair(self, i: int, value: Any, where: str) -> None:
        k = self.neighbours.shape[1]
        if not isinstance(value, list) or len(value) != k:
            raise self.fail(where, f"must hold one list of pairs per neighbour ({k})", i)
        if not self.pair_counts.size:
            self.pair_counts = np.zeros((self.n, k), np.int64)
        index = []
        for j, rows in enumerate(value):
            pairs = self.numbers(rows, 8, f"{where}[{j}]", i)
            nb = int(self.neighbours[i, j])
            q = _positions(pairs[:, :4], self.boxes[i])
            other = _positions(pairs[:, 4:], self.boxes[nb])
            if (q < 0).any() or (other < 0).any():
                row = pairs[int(np.flatnonzero((q < 0) | (other < 0))[0])].tolist()
                raise self.fail(f"{where}[{j}]", f"pair {row} is not made of bbox boxes", i)
            index.append(np.stack([q, other], axis=1))
            self.pair_counts[i, j] = len(pairs)
        self.pair_index.append(np.concatenate(index))

    def knn_bbox_pair_sim(self, i: int, value: Any, where: str) -> None:
        counts = self.pair_counts[i].tolist()
        lengths = [len(v) for v in value] if isinstance(value, list) else None
        if lengths != counts:
            raise self.fail(where, f"must hold one similarity per pair ({counts} per neighbour)", i)
        flat = [s for row in value for s in row]
        if not all(_is_number(s) or s is None for s in flat):
            raise self.fail(where, "similarities must be numbers", i)
        sims = np.array([math.nan if s is None else s for s in flat], np.float32)
        self.pair_sims.append(sims)

    def info(self) -> None:
        self.expect("object", "info")
        info = self.reader.value()
        orl = info.get("orl", {})
        if not isinstance(orl, dict):
            raise self.fail("info.orl", "must be an object")
        meta, flags = orl.get("meta", {}), orl.get("flags", {})
        if not isinstance(meta, dict):
            raise self.fail("info.orl.meta", "must be an object")
        if not isinstance(flags, dict):
            raise self.fail("info.orl.flags", "must be an object of image position: flags")
        self.meta, self.raw_flags = meta, flags

    def check_flags(self) -> None:
        """`info.orl.flags` against the data set (after the file names: a file made for another
        data set is reported as such first)."""
        where = "info.orl.flags"
        for key, v in self.raw_flags.items():
            if not (key.isdigit() and int(key) < self.n):
                raise self.fail(where, f"{key!r} is not an image position")
            i = int(key)
            if isinstance(v, bool) or not isinstance(v, int) or v & ~_FLAGS or v < 0:
                raise self.fail(where, f"{v!r} is not a flag value 0..{_FLAGS}", i)
            self.flags[i] = v

    def result(self) -> AuthorsCorrespondences:
        pair_index = np.concatenate(self.pair_index)
        has_sims = "pseudo_annotations.knn_bbox_pair_sim" in self.seen
        return AuthorsCorrespondences(
            boxes=self.boxes,
            neighbours=self.neighbours,
            pair_index=pair_index,
            pair_counts=self.pair_counts.reshape(-1),
            pair_sims=(
                np.concatenate(self.pair_sims)
                if has_sims
                else np.full(len(pair_index), np.nan, np.float32)
            ),
            flags=self.flags,
            meta=self.meta,
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positions(rows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Index of each row in `boxes` (its first occurrence), -1 where absent."""
    equal = (rows[:, None, :] == boxes[None, :, :]).all(axis=2)
    return np.where(equal.any(axis=1), equal.argmax(axis=1), -1)


def read_authors_json(src: Path, images: ImageList) -> AuthorsCorrespondences:
    """Stream `src`, checking every field against `images` (the data set, in order)."""
    try:
        with src.open(encoding="utf-8") as f:
            parser = _Parser(src, images, JsonReader(f))
            parser.document()
    except OSError as exc:
        raise AuthorsJsonError(f"{src}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise AuthorsJsonError(f"{src}: not UTF-8 text ({exc.reason})") from exc
    except JsonStreamError as exc:
        raise AuthorsJsonError(f"{src}: not an authors' correspondence JSON ({exc})") from exc
    return parser.result()
