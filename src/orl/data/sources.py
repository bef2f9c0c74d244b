"""Data-set sources accepted everywhere: image folders, list files, COCO JSONs, and concatenations.

A source string is one of
- a folder: every image below it, recursively, sorted by relative path;
- a `.txt` file: one image path per line (relative paths are relative to the list file's folder;
  blank lines and lines starting with `#` are ignored);
- a COCO annotation `.json`, optionally followed by `:IMAGE_DIR`; without it the image folder is
  guessed as `<json>/../../<split>` from the COCO layout (`annotations/instances_train2017.json` ->
  `train2017/`). Order is the JSON's `images` order.
- tar shards in the WebDataset layout, `shards/{000000..000999}.tar` (`data/shards.py`): the
  image of every sample, shard by shard in tar order; its relative path is its member name
  (`KEY.jpg`), so shards packed from a folder (`orl shards`) fingerprint like the folder.
Several sources concatenate in the order given (COCO+ = train2017 + unlabeled2017).

Every data set has a fingerprint: the SHA-256 of the ordered (source index, relative path, size)
lines. Artifacts record it, so a store built on one data set is never used with another.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from orl.data.decode import IMAGE_EXTENSIONS, Decoded, UnusableImage, decode_image
from orl.data.shards import ShardError, index_shards, is_shard_spec, read_member


class DataSourceError(ValueError):
    """A data source that cannot be read; the message is one line naming the path and the fix."""


@dataclass(frozen=True)
class ImageList:
    """An ordered list of image files, stored compactly.

    Paths live in one NumPy bytes array (not a list of Python strings) so that forked data-loader
    workers share the pages instead of copying them as reference counts change.
    """

    paths: np.ndarray  # dtype S: absolute paths, utf-8
    sizes: np.ndarray  # int64 file sizes in bytes, -1 when the file is missing
    relpaths: np.ndarray  # dtype S: path relative to its source, as fingerprinted
    source_index: np.ndarray  # int16: which source each image came from
    sources: tuple[str, ...]
    coco_ids: np.ndarray  # int64 COCO image id, -1 for non-COCO sources
    fingerprint: str
    # byte offset of the image inside its shard (`paths` is then the tar file), -1 for a file
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, i: int) -> str:
        """The image file, or for an image inside a shard the shard's tar file."""
        return bytes(self.paths[i]).decode("utf-8")

    def offset(self, i: int) -> int:
        """Byte offset of image `i` in its shard; -1 for an image file."""
        return int(self.offsets[i]) if len(self.offsets) else -1

    def in_shard(self, i: int) -> bool:
        return self.offset(i) >= 0

    def decode(self, i: int, max_side: int | None = None) -> Decoded:
        """Image `i` decoded (`data/decode.py`), from its file or from its shard."""
        return decode_image(self.source(i), max_side)

    def source(self, i: int) -> str | BinaryIO:
        """What the decoder reads for image `i`: its file, or its shard member's bytes (an
        unreadable member raises UnusableImage, like an unreadable file)."""
        return member_source(self.path(i), self.offset(i), int(self.sizes[i]))

    def read_bytes(self, i: int) -> bytes:
        """The encoded bytes of image `i` (OSError or ShardError when they cannot be read)."""
        if not self.in_shard(i):
            return Path(self.path(i)).read_bytes()
        return read_member(self.path(i), self.offset(i), int(self.sizes[i]))

    def shard_starts(self) -> np.ndarray | None:
        """First position of every run of images read from one container (a shard; a plain file
        is its own run), or None when no image comes from a shard."""
        if not len(self.offsets) or (self.offsets < 0).all():
            return None
        container = np.where(self.offsets >= 0, self.paths, np.arange(len(self)).astype(np.bytes_))
        return np.flatnonzero(np.r_[True, container[1:] != container[:-1]])

    def relpath(self, i: int) -> str:
        return bytes(self.relpaths[i]).decode("utf-8")


def member_source(path: str, offset: int, size: int) -> str | BinaryIO:
    """The image file `path` (`offset` < 0), or the `size` bytes at `offset` of the shard `path`;
    an unreadable member raises UnusableImage like an unreadable file."""
    if offset < 0:
        return path
    try:
        return io.BytesIO(read_member(path, offset, size))
    except (OSError, ShardError) as exc:
        raise UnusableImage(str(exc)[:120]) from exc


def decode_at(path: str, offset: int, size: int, max_side: int | None = None) -> Decoded:
    """`member_source(path, offset, size)` decoded by the one decoder (`data/decode.py`)."""
    return decode_image(member_source(path, offset, size), max_side)


def _scan_folder(root: Path) -> list[str]:
    """Relative paths of the images below `root`, sorted; hidden files and folders left out.

    Folder links are followed (a data set may be assembled from links), but each real folder is
    read once, identified by (device, inode): a link back into the tree (`loop -> .`) adds
    nothing, and the real path of a folder wins over a link to it. A link to the root or one of
    its ancestors (`up -> ..`) is not followed: it would leave the data root and come back in.
    """
    root_real = Path(os.path.realpath(root))
    found: list[str] = []
    visited = {_folder_id(root)}
    folders: deque[str] = deque([""])
    links: deque[str] = deque()  # folder links, read after every real folder reached so far
    while folders or links:
        if not folders:
            link = links.popleft()
            target = Path(os.path.realpath(root / link))
            identity = _folder_id(root / link)
            if (
                identity is not None
                and identity not in visited
                and target
                not in (
                    root_real,
                    *root_real.parents,
                )
            ):
                visited.add(identity)
                folders.append(link)
            continue
        folder = folders.popleft()
        try:
            entries = sorted(os.scandir(root / folder), key=lambda e: e.name)
        except OSError:  # unreadable folder: skipped, like os.walk does
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{folder}/{entry.name}" if folder else entry.name
            if entry.is_symlink() and entry.is_dir():
                links.append(rel)
            elif entry.is_dir(follow_symlinks=False):
                visited.add(_folder_id(root / rel))
                folders.append(rel)
            elif Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS and entry.is_file():
                found.append(rel)
    return sorted(found)


def _folder_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _read_list(list_file: Path) -> tuple[Path, list[str]]:
    rels = []
    try:
        text = list_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"{list_file}: not UTF-8 text ({exc.reason}); save it so") from exc
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rels.append(line)
    return list_file.parent, rels


def _coco_image_dir(json_path: Path) -> Path:
    """COCO's layout: `annotations/instances_<split>.json` (the split may hold `_`, as the scene
    benchmark's `test_seen`) or `annotations/image_info_<split>.json` -> `<split>/`."""
    stem = json_path.stem
    split = stem[len("instances_") :] if stem.startswith("instances_") else stem.rsplit("_", 1)[-1]
    return json_path.parent.parent / split


def split_coco_spec(spec: str) -> tuple[Path, Path | None]:
    """`ann.json[:IMAGE_DIR]` -> (json path, explicit image dir or None)."""
    head, sep, tail = spec.partition(".json:")
    if sep:
        return Path(head + ".json"), Path(tail)
    return Path(spec), None


def _read_coco(spec: str) -> tuple[Path, list[str], list[int]]:
    json_path, image_dir = split_coco_spec(spec)
    if not json_path.is_file():
        raise DataSourceError(f"{json_path}: COCO annotation file not found")
    image_dir = image_dir or _coco_image_dir(json_path)
    if not image_dir.is_dir():
        raise DataSourceError(
            f"{image_dir}: image folder for {json_path.name} not found; "
            f"write the source as {json_path}:IMAGE_DIR"
        )
    try:
        with json_path.open(encoding="utf-8") as f:
            images = json.load(f)["images"]
        rels = [str(im["file_name"]) for im in images]
        ids = [im["id"] for im in images]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise DataSourceError(f"{json_path}: not a COCO annotation file ({exc})") from exc
    for j, image_id in enumerate(ids):
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise DataSourceError(
                f"{json_path}: images[{j}] ({rels[j]}) has id {image_id!r}, not an integer; "
                "fix that entry"
            )
    return image_dir, rels, ids


@dataclass
class _Images:
    """The images of the sources read so far, as parallel lists in data-set order."""

    paths: list[str] = field(default_factory=list)  # absolute
    relpaths: list[str] = field(default_factory=list)
    source_index: list[int] = field(default_factory=list)
    coco_ids: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # in its shard; -1 for an image file
    member_sizes: dict[int, int] = field(default_factory=dict)  # position -> size, in a shard

    def add_shards(self, spec: str, k: int) -> None:
        """Every sample of the tar shards `spec`, shard by shard in tar order."""
        try:
            samples = index_shards(spec)
        except ShardError as exc:
            raise DataSourceError(str(exc)) from exc
        for sample in samples:
            self.member_sizes[len(self.paths)] = sample.size
            self.paths.append(str(Path(sample.shard).absolute()))
            self.relpaths.append(sample.name)
            self.source_index.append(k)
            self.coco_ids.append(-1)
            self.offsets.append(sample.offset)

    def add_files(self, spec: str, k: int) -> None:
        """The images of a folder, a `.txt` list or a COCO json."""
        base = Path(spec)
        ids: list[int] | None = None
        if ".json" in spec and (spec.endswith(".json") or ".json:" in spec):
            root, rels, ids = _read_coco(spec)
        elif base.is_dir():
            root, rels = base, _scan_folder(base)
        elif base.is_file() and base.suffix.lower() == ".txt":
            root, rels = _read_list(base)
        elif not base.exists():
            raise DataSourceError(f"{base}: data path not found")
        else:
            raise DataSourceError(
                f"{base}: not a folder, a .txt image list or a COCO .json; pass one of those"
            )
        if not rels:
            raise DataSourceError(f"{base}: no images found")
        _require_utf8_names(root, rels)
        for j, rel in enumerate(rels):
            self.paths.append(str((root / rel).absolute()))
            self.relpaths.append(rel)
            self.source_index.append(k)
            self.coco_ids.append(ids[j] if ids is not None else -1)
            self.offsets.append(-1)

    def image_list(self, sources: Sequence[str | Path]) -> ImageList:
        """The compact ImageList, with the sizes of the files and the data set's fingerprint."""
        in_shard = self.member_sizes
        sizes = np.array(
            [in_shard[i] if i in in_shard else _size(p) for i, p in enumerate(self.paths)],
            dtype=np.int64,
        )
        h = hashlib.sha256()
        for k, rel, size in zip(self.source_index, self.relpaths, sizes.tolist(), strict=True):
            h.update(f"{k}\t{rel}\t{size}\n".encode())
        return ImageList(
            paths=np.array([p.encode("utf-8") for p in self.paths], dtype=np.bytes_),
            sizes=sizes,
            relpaths=np.array([r.encode("utf-8") for r in self.relpaths], dtype=np.bytes_),
            source_index=np.array(self.source_index, dtype=np.int16),
            sources=tuple(str(s) for s in sources),
            coco_ids=np.array(self.coco_ids, dtype=np.int64),
            fingerprint=h.hexdigest(),
            offsets=np.array(self.offsets, dtype=np.int64),
        )


def resolve_sources(specs: Sequence[str | Path]) -> ImageList:
    """Read every source, in order, into one ImageList with its fingerprint."""
    if not specs:
        raise DataSourceError(
            "no data source given: set `data` to an image folder, list or COCO json"
        )
    images = _Images()
    for k, raw in enumerate(specs):
        spec = str(raw)
        if not spec.strip():  # Path("") is the current folder: never what was meant
            raise DataSourceError(
                "an empty data source: give an image folder, a .txt image list or a COCO json"
            )
        if is_shard_spec(spec):
            images.add_shards(spec, k)
        else:
            images.add_files(spec, k)
    return images.image_list(specs)


def _require_utf8_names(root: Path, rels: Sequence[str]) -> None:
    """Paths are stored and fingerprinted as UTF-8; a name that is not is named, not crashed on."""
    for rel in rels:
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError as exc:
            shown = os.fsencode(root / rel).decode("utf-8", "backslashreplace")
            raise DataSourceError(
                f"{shown}: the file name is not valid UTF-8; rename the file (or leave it out)"
            ) from exc


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1
