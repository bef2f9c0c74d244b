"""Read files out of Qt binary resource bundles (``.rcc``) without Qt.

GCompris ships its photographs inside ``.rcc`` bundles (``rcc --binary`` output), so the photo
fetcher needs a small reader. The layout, from Qt's ``qresource.cpp``/``rcc.cpp``:

* header: magic ``qres``, then big-endian ``u32`` version, tree offset, data offset, names offset
  and, from version 3 on, a ``u32`` flags word;
* tree: fixed-size nodes (14 bytes, plus an 8-byte modification time from version 2 on), node 0 is
  the root directory. A node is ``u32 name_offset, u16 flags`` followed by either
  ``u32 child_count, u32 first_child_index`` (directory) or
  ``u16 territory, u16 language, u32 data_offset`` (file);
* names: ``u16 length, u32 hash`` then ``length`` UTF-16BE code units;
* data: ``u32 size`` then the payload; a zlib-compressed payload is in ``qCompress`` form
  (``u32`` uncompressed size, then a zlib stream), a zstd one is a plain zstd frame.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RCC_MAGIC = b"qres"

# Bounds on what a bundle may inflate to: a crafted bundle must not exhaust memory. The largest
# GCompris entries are a few MB.
MAX_ENTRY_BYTES = 1 << 28
MAX_BUNDLE_BYTES = 1 << 30

# Node flags from Qt's QResourceRoot::Flags.
FLAG_COMPRESSED = 0x01
FLAG_DIRECTORY = 0x02
FLAG_COMPRESSED_ZSTD = 0x04


class RccFormatError(ValueError):
    """The bytes are not a Qt binary resource bundle this reader understands."""


@dataclass(frozen=True)
class RccEntry:
    """One file inside a bundle.

    ``data`` is the uncompressed payload, or ``None`` when it is zstd-compressed: the standard
    library has no zstd decoder (before Python 3.14) and we do not add a dependency for it.
    """

    path: str
    data: bytes | None
    compression: str  # "none", "zlib" or "zstd"


@dataclass(frozen=True)
class _Header:
    version: int
    tree_offset: int
    data_offset: int
    names_offset: int


def _read_header(blob: bytes) -> _Header:
    if len(blob) < 20 or blob[:4] != RCC_MAGIC:
        raise RccFormatError("missing 'qres' magic")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    if version not in (1, 2, 3):
        raise RccFormatError(f"unsupported rcc version {version}")
    for offset in (tree, data, names):
        if offset >= len(blob):
            raise RccFormatError("offset past the end of the bundle")
    return _Header(version, tree, data, names)


def _read_name(blob: bytes, header: _Header, name_offset: int) -> str:
    position = header.names_offset + name_offset
    (length,) = struct.unpack_from(">H", blob, position)
    start = position + 6  # skip the u16 length and the u32 hash
    end = start + 2 * length
    if end > len(blob):
        raise RccFormatError("name past the end of the bundle")
    return blob[start:end].decode("utf-16-be")


def _read_payload(blob: bytes, header: _Header, data_offset: int, flags: int) -> bytes:
    position = header.data_offset + data_offset
    (size,) = struct.unpack_from(">I", blob, position)
    raw = blob[position + 4 : position + 4 + size]
    if len(raw) != size:
        raise RccFormatError("payload past the end of the bundle")
    if flags & FLAG_COMPRESSED:
        return _inflate(raw)
    return raw


def _inflate(raw: bytes) -> bytes:
    """A qCompress payload (u32 uncompressed size, then a zlib stream), inflated no further than
    the size it declares."""
    (declared,) = struct.unpack_from(">I", raw)
    if declared > MAX_ENTRY_BYTES:
        raise RccFormatError(f"entry of {declared} bytes is above the {MAX_ENTRY_BYTES} limit")
    inflater = zlib.decompressobj()
    data = inflater.decompress(raw[4:], declared)
    if inflater.unconsumed_tail or not inflater.eof or len(data) != declared:
        raise RccFormatError("compressed entry does not inflate to its declared size")
    return data


def iter_rcc_entries(blob: bytes) -> Iterator[RccEntry]:
    """Yield every file of the bundle, depth first, with its ``/``-separated path.

    Raises ``RccFormatError`` for any malformed bundle, whatever part of it is broken.
    """
    try:
        yield from _iter_entries(blob)
    except (struct.error, zlib.error, UnicodeDecodeError) as error:
        raise RccFormatError(str(error)) from error


def _iter_entries(blob: bytes) -> Iterator[RccEntry]:
    header = _read_header(blob)
    node_size = 14 if header.version == 1 else 22
    n_nodes_max = (len(blob) - header.tree_offset) // node_size

    def node(index: int) -> tuple[int, int, int, int]:
        if index >= n_nodes_max:
            raise RccFormatError(f"tree node {index} past the end of the bundle")
        position = header.tree_offset + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, position)
        first, second = struct.unpack_from(">II", blob, position + 6)
        return name_offset, flags, first, second

    # An explicit stack instead of recursion, and a visited set so a corrupt bundle whose
    # directories point at each other cannot loop forever.
    stack: list[tuple[int, str]] = [(0, "")]
    visited: set[int] = set()
    inflated = 0
    while stack:
        index, prefix = stack.pop()
        if index in visited:
            raise RccFormatError("cycle in the resource tree")
        visited.add(index)
        name_offset, flags, first, second = node(index)
        name = "" if index == 0 else _read_name(blob, header, name_offset)
        path = f"{prefix}/{name}" if prefix else name
        if flags & FLAG_DIRECTORY:
            child_count, first_child = first, second
            if first_child + child_count > n_nodes_max:  # also bounds the stack below
                raise RccFormatError(f"directory {path!r} has children past the end of the bundle")
            stack.extend((first_child + i, path) for i in reversed(range(child_count)))
            continue
        # For files the second u32 of the node is the data offset; ``first`` packs territory
        # and language, which we do not need.
        if flags & FLAG_COMPRESSED_ZSTD:
            yield RccEntry(path=path, data=None, compression="zstd")
            continue
        payload = _read_payload(blob, header, second, flags)
        inflated += len(payload)
        if inflated > MAX_BUNDLE_BYTES:
            raise RccFormatError(f"bundle inflates to more than {MAX_BUNDLE_BYTES} bytes")
        compression = "zlib" if flags & FLAG_COMPRESSED else "none"
        yield RccEntry(path=path, data=payload, compression=compression)


def read_rcc(path: Path) -> list[RccEntry]:
    """Read all file entries of the bundle at ``path``."""
    return list(iter_rcc_entries(path.read_bytes()))
