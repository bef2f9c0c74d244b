"""Atomic file writes: every artifact appears whole or not at all.

Write to a temporary file in the target's folder, flush and fsync, then `os.replace` it over the
target. A reader, or a run resumed after a kill, sees the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask is process-wide, so toggling it per write would race threads.
_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces `path` only when the block ends cleanly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; artifacts get the mode a plain open() would give them,
        # so a run's outputs stay readable by the group that shares them.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(data: bytes, path: Path) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(text: str, path: Path) -> None:
    atomic_write_bytes(text.encode("utf-8"), path)


def atomic_save_npy(array: np.ndarray, path: Path) -> None:
    """`np.save` (no pickles) through a temporary file and a rename."""
    with atomic_open(path) as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
