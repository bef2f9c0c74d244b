"""Tar shards in the WebDataset layout: reading them as a data source, and writing them.

A shard is an uncompressed tar whose members are named `KEY.EXT`; the members sharing a KEY form
one sample (WebDataset's convention: the key is the member name up to the first dot of its file
name), and a sample's image is its member with an image extension. Other members (`.cls`,
`.json`, ...) are ignored, so shards written for WebDataset read here, and ours read in WebDataset.

`data: shards/{000000..000999}.tar` names a set of shards by brace expansion (`{a..b}` with the
zero padding of `a`, `{x,y}` alternatives). Opening it reads every shard's tar headers once into an
index: per sample its member name, the byte offset of its data and its size. Images are then read
by offset from the tar file, one member at a time, never extracted to disk.

Safety: a member name must be a relative path without `..` (names are keys, never extraction
paths, but such a name marks a hostile or broken archive), only regular files are read, and a
member larger than `MAX_MEMBER_BYTES` is refused, so a shard cannot make a reader allocate
without bound.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from orl.artifacts import atomic_open

IMAGE_SUFFIXES = frozenset(
    {"jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff", "ppm", "pgm", "pbm"}
)
MAX_MEMBER_BYTES = 256 * 2**20  # one image; larger members are refused
_BRACE = re.compile(r"\{([^{}]*)\}")
FORMAT = tarfile.PAX_FORMAT  # long names, and what WebDataset's writer uses


class ShardError(ValueError):
    """A shard set that cannot be read; one line naming the shard and the fix."""


def expand_braces(pattern: str) -> list[str]:
    """`a/{000..002}.tar` -> a/000.tar, a/001.tar, a/002.tar; `{x,y}` -> x, y; several groups
    expand left to right (as the shell and WebDataset's `braceexpand`)."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    body, head, tail = match.group(1), pattern[: match.start()], pattern[match.end() :]
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        first, last = numeric.groups()
        width = len(first)
        step = 1 if int(last) >= int(first) else -1
        items = [f"{v:0{width}d}" for v in range(int(first), int(last) + step, step)]
    else:
        items = body.split(",")
    return [out for item in items for out in expand_braces(head + item + tail)]


def is_shard_spec(spec: str) -> bool:
    """Whether a data source names tar shards (`*.tar`, braces allowed)."""
    return spec.endswith(".tar")


@dataclass(frozen=True)
class ShardSample:
    """One sample's image inside a shard."""

    shard: str  # path of the tar file
    name: str  # member name, `KEY.EXT`
    offset: int  # byte offset of the member's data in the tar file
    size: int


def sample_key(name: str) -> str:
    """WebDataset's key of a member: its path up to the first dot of the file name."""
    path = PurePosixPath(name)
    return str(path.parent / path.name.split(".", 1)[0]).removeprefix("./")


def _check_name(where: str, name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise ShardError(f"{where}: member name '{name}' is not a plain relative path")


def _check_member(shard: str, member: tarfile.TarInfo) -> None:
    _check_name(shard, member.name)
    if member.size > MAX_MEMBER_BYTES:
        raise ShardError(
            f"{shard}: member '{member.name}' has {member.size} bytes, more than an image may "
            f"({MAX_MEMBER_BYTES}); rebuild the shard"
        )


def index_shard(shard: str) -> list[ShardSample]:
    """The image of every sample in `shard`, in tar order (its first image member per key)."""
    samples: dict[str, ShardSample] = {}
    try:
        with tarfile.open(shard, mode="r:") as tar:  # uncompressed only: offsets must be real
            for member in tar:
                if not member.isfile():
                    continue
                _check_member(shard, member)
                suffix = member.name.rsplit(".", 1)[-1].lower()
                key = sample_key(member.name)
                if suffix in IMAGE_SUFFIXES and key not in samples:
                    samples[key] = ShardSample(shard, member.name, member.offset_data, member.size)
    except FileNotFoundError as exc:
        raise ShardError(f"{shard}: shard not found; check the data pattern") from exc
    except (tarfile.TarError, OSError) as exc:
        raise ShardError(f"{shard}: not a readable uncompressed tar ({exc}); rebuild it") from exc
    return list(samples.values())


def index_shards(pattern: str) -> list[ShardSample]:
    """Every sample of the shards `pattern` names, shard by shard (in the pattern's order)."""
    shards = expand_braces(pattern)
    samples = [s for shard in shards for s in index_shard(shard)]
    if not samples:
        raise ShardError(f"{pattern}: the shards hold no image")
    return samples


def read_member(shard: str, offset: int, size: int) -> bytes:
    """The `size` bytes at `offset` of `shard` (one image)."""
    if not 0 <= size <= MAX_MEMBER_BYTES:
        raise ShardError(f"{shard}: member size {size} out of range")
    with open(shard, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"{shard}: truncated member at byte {offset}")
    return data


def shard_order(
    starts: np.ndarray, total: int, generator: np.random.Generator
) -> Iterator[np.ndarray]:
    """The positions of one epoch: shards in a random order, each shard's samples in a random
    order within it. `starts` are the first positions of the shards (ascending)."""
    ends = np.append(starts[1:], total)
    for s in generator.permutation(len(starts)):
        yield starts[s] + generator.permutation(ends[s] - starts[s])


def write_shards(
    files: Sequence[tuple[str, str]], out: Path, per_shard: int, seed: int | None = 0
) -> list[Path]:
    """Pack `(path, member name)` pairs into `out/000000.tar`, ... (`per_shard` images each),
    in a seeded random order (`seed=None`: as given), WebDataset's advice for shards that are
    read shard by shard. Members keep their bytes; headers carry no time or owner, so the same
    files give the same shards."""
    if per_shard < 1:
        raise ShardError(f"--per-shard {per_shard}: a shard holds at least one image")
    keys: dict[str, str] = {}
    for source, name in files:
        _check_name(source, name)
        other = keys.setdefault(sample_key(name), source)
        if other != source:
            raise ShardError(
                f"{source}: its sample key '{sample_key(name)}' is also {other}'s (the key is the "
                "name up to the first dot); rename one"
            )
    order = np.arange(len(files))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(files))
    written = []
    for k, first in enumerate(range(0, len(files), per_shard)):
        path = out / f"{k:06d}.tar"
        with atomic_open(path) as f, tarfile.open(fileobj=f, mode="w", format=FORMAT) as tar:
            for i in order[first : first + per_shard]:
                source, name = files[i]
                info = tarfile.TarInfo(name)
                info.size = os.path.getsize(source)
                info.mode = 0o644
                with open(source, "rb") as data:
                    tar.addfile(info, data)
        written.append(path)
    return written
