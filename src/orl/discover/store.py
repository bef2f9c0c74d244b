"""The correspondence store: the output of stage 2 (sec. 3.1 (i)-(iii)), read by stage 3.

One folder of `.npy` files plus `meta.json`; ragged lists are flat arrays with offsets:

    boxes.npy         (total_boxes, 4) int16 xywh in original pixels (int32 if a coordinate > 32767)
    box_offsets.npy   (N + 1,) int64: image i owns boxes[box_offsets[i]:box_offsets[i + 1]]
    neighbours.npy    (N, K) int32: 0-based data-set positions
    pair_index.npy    (total_pairs, 2) uint8 (int16 if a box index > 255): (box in q, box in k)
    pair_offsets.npy  (N * K + 1,) int64: pairs of (q, j-th neighbour) at row q * K + j
    pair_sims.npy     (total_pairs,) float16 cosine similarity of each pair (NaN when imported)
    flags.npy         (N,) uint8: bit 0 = skipped (undecodable), bit 1 = box fallback
    meta.json         format, version, fingerprint, checkpoint sha256, settings, counts

Each file is written to a temporary name and renamed; `meta.json` comes last, so a folder with a
`meta.json` is complete. Opening memory-maps every array: DataLoader workers share the pages, and
pickling the store sends only its path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orl.artifacts import atomic_save_npy, atomic_write_bytes

FORMAT = "orl-correspondences"
VERSION = 1
FLAG_SKIPPED = 1
FLAG_FALLBACK = 2
ARRAYS = (
    "boxes",
    "box_offsets",
    "neighbours",
    "pair_index",
    "pair_offsets",
    "pair_sims",
    "flags",
)


class StoreError(ValueError):
    """A correspondence folder that cannot be used; the message is one line naming it."""


class StoreMismatch(StoreError):
    """The store was built on another data set than the one it is used with."""


def offsets_of(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """(n + 1,) int64 prefix sums: the offsets of a ragged list with these lengths."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=out[1:])
    return out


def _smallest(values: np.ndarray, small: type[np.integer[Any]], big: type[np.integer[Any]]) -> Any:
    if values.size == 0:
        return small
    info = np.iinfo(small)
    return small if values.min() >= info.min and values.max() <= info.max else big


def write_store_arrays(
    path: Path,
    boxes: np.ndarray,
    box_offsets: np.ndarray,
    neighbours: np.ndarray,
    pair_index: np.ndarray,
    pair_offsets: np.ndarray,
    pair_sims: np.ndarray,
    flags: np.ndarray,
    meta: dict[str, Any],
) -> None:
    """Validate the flat arrays and write the store (arrays first, `meta.json` last)."""
    n, k = neighbours.shape
    if len(box_offsets) != n + 1 or len(pair_offsets) != n * k + 1 or len(flags) != n:
        raise ValueError("store arrays disagree on the number of images or neighbours")
    if np.any(np.diff(box_offsets) < 1):
        raise ValueError("every image needs at least one box")
    if np.any(np.diff(pair_offsets) < 1):
        raise ValueError("every (image, neighbour) needs at least one pair")
    if n and (neighbours.min() < 0 or neighbours.max() >= n):
        raise ValueError("neighbour positions out of range")
    counts = np.diff(box_offsets)
    q_rows = np.repeat(np.arange(n * k, dtype=np.int64) // k, np.diff(pair_offsets))
    n_rows = neighbours.reshape(-1)[np.repeat(np.arange(n * k), np.diff(pair_offsets))]
    if len(pair_index) and (
        np.any(pair_index[:, 0] >= counts[q_rows]) or np.any(pair_index[:, 1] >= counts[n_rows])
    ):
        raise ValueError("pair box index beyond the image's box list")
    path.mkdir(parents=True, exist_ok=True)
    (path / "meta.json").unlink(missing_ok=True)  # the folder is incomplete until meta is back
    arrays = {
        "boxes": boxes.astype(_smallest(boxes, np.int16, np.int32)),
        "box_offsets": box_offsets.astype(np.int64),
        "neighbours": neighbours.astype(np.int32),
        "pair_index": pair_index.astype(_smallest(pair_index, np.uint8, np.int16)),
        "pair_offsets": pair_offsets.astype(np.int64),
        "pair_sims": pair_sims.astype(np.float16),
        "flags": flags.astype(np.uint8),
    }
    for name, arr in arrays.items():
        atomic_save_npy(arr, path / f"{name}.npy")
    full = {
        **meta,
        "format": FORMAT,
        "version": VERSION,
        "num_images": int(n),
        "k": int(k),
        "total_boxes": len(boxes),
        "total_pairs": len(pair_index),
    }
    atomic_write_bytes(json.dumps(full, indent=1).encode(), path / "meta.json")


def write_store(
    path: Path,
    boxes: Sequence[np.ndarray],
    neighbours: np.ndarray,
    pair_index: Sequence[Sequence[np.ndarray]],
    meta: dict[str, Any],
    pair_sims: Sequence[Sequence[np.ndarray]] | None = None,
    flags: np.ndarray | None = None,
) -> None:
    """Write a store from ragged per-image lists.

    `boxes[i]` is (B_i, 4) xywh; `pair_index[i][j]` is (P, 2) indices into `boxes[i]` and
    `boxes[neighbours[i, j]]`; `pair_sims[i][j]` their similarities (NaN when not given).
    """
    n, k = neighbours.shape
    if len(boxes) != n or len(pair_index) != n:
        raise ValueError("boxes, neighbours and pair_index must cover the same images")
    flat_pairs = [np.asarray(p, dtype=np.int64).reshape(-1, 2) for row in pair_index for p in row]
    if len(flat_pairs) != n * k:
        raise ValueError("pair_index needs one entry per (image, neighbour)")
    if pair_sims is None:
        sims = np.full(sum(len(p) for p in flat_pairs), np.nan, dtype=np.float16)
    else:
        sims = np.concatenate([np.asarray(s).reshape(-1) for row in pair_sims for s in row])
    write_store_arrays(
        path,
        boxes=np.concatenate([np.asarray(b).reshape(-1, 4) for b in boxes]),
        box_offsets=offsets_of([len(b) for b in boxes]),
        neighbours=np.asarray(neighbours),
        pair_index=np.concatenate(flat_pairs) if flat_pairs else np.zeros((0, 2), np.int64),
        pair_offsets=offsets_of([len(p) for p in flat_pairs]),
        pair_sims=sims,
        flags=np.zeros(n, np.uint8) if flags is None else np.asarray(flags),
        meta=meta,
    )


class CorrespondenceStore:
    """Read access to a store folder; every array is memory-mapped, nothing is copied."""

    def __init__(self, path: Path, expected_fingerprint: str | None) -> None:
        self.path = Path(path)
        self._expected = expected_fingerprint
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise StoreError(
                f"{self.path}: no correspondence store here (meta.json missing); "
                "run `orl discover` (with --resume to finish a killed run)"
            )
        try:
            self.meta: dict[str, Any] = json.loads(meta_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise StoreError(f"{meta_file}: unreadable ({exc}); rerun `orl discover`") from exc
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise StoreError(f"{self.path}: not an {FORMAT} v{VERSION} store; rerun `orl discover`")
        self.fingerprint: str = str(self.meta["fingerprint"])
        if expected_fingerprint is not None and expected_fingerprint != self.fingerprint:
            raise StoreMismatch(
                f"{self.path}: store was built on data set {self.fingerprint[:12]} but this data "
                f"set is {expected_fingerprint[:12]}; rerun `orl discover` on this data"
            )
        arrays: dict[str, np.ndarray] = {}
        for name in ARRAYS:
            try:
                arrays[name] = np.load(self.path / f"{name}.npy", mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise StoreError(f"{self.path / name}.npy: unreadable ({exc})") from exc
        self._a = arrays
        self.num_images: int = int(self.meta["num_images"])
        self.k: int = int(self.meta["k"])

    @classmethod
    def open(cls, path: Path, expected_fingerprint: str | None = None) -> CorrespondenceStore:
        """Memory-map the store at `path`; StoreMismatch if it belongs to another data set."""
        return cls(path, expected_fingerprint)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "expected": self._expected}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(Path(state["path"]), state["expected"])  # type: ignore[misc]

    def __len__(self) -> int:
        return self.num_images

    def boxes(self, i: int) -> np.ndarray:
        """(B_i, 4) int32 xywh in original (EXIF-rotated) pixels; B_i >= 1."""
        off = self._a["box_offsets"]
        return np.asarray(self._a["boxes"][off[i] : off[i + 1]], dtype=np.int32)

    def neighbours(self, i: int) -> np.ndarray:
        """(K,) int positions of image i's nearest neighbours, most similar first."""
        return np.asarray(self._a["neighbours"][i], dtype=np.int64)

    def pair_index(self, i: int, j: int) -> np.ndarray:
        """(P, 2) int indices into boxes(i) and boxes(neighbours(i)[j])."""
        off = self._a["pair_offsets"]
        row = i * self.k + j
        return np.asarray(self._a["pair_index"][off[row] : off[row + 1]], dtype=np.int64)

    def pair_sims(self, i: int, j: int) -> np.ndarray:
        """(P,) float32 cosine similarities of pairs(i, j) (NaN for imported stores)."""
        off = self._a["pair_offsets"]
        row = i * self.k + j
        return np.asarray(self._a["pair_sims"][off[row] : off[row + 1]], dtype=np.float32)

    def pairs(self, i: int, j: int) -> np.ndarray:
        """(P, 8) int32 [qx, qy, qw, qh, nx, ny, nw, nh] for the j-th neighbour; P >= 1."""
        idx = self.pair_index(i, j)
        nb = int(self._a["neighbours"][i, j])
        return np.concatenate([self.boxes(i)[idx[:, 0]], self.boxes(nb)[idx[:, 1]]], axis=1)

    def flags(self, i: int) -> int:
        return int(self._a["flags"][i])

    def is_skipped(self, i: int) -> bool:
        """True for an image the decoder refused: one placeholder box, never a neighbour."""
        return bool(self._a["flags"][i] & FLAG_SKIPPED)

    def array(self, name: str) -> np.ndarray:
        """A whole memory-mapped array (for statistics); names as in the module docstring."""
        return self._a[name]
