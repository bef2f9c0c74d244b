"""The unit of work of stage 2: fixed ranges of data-set positions, saved one file per shard.

Shard s covers positions [s * size, (s + 1) * size); rank r of w owns shards s with s % w == r.
Shard boundaries do not depend on the number of ranks, so every computation (including the
blocking of the kNN matmul) is the same in one process and under torchrun, and a resumed run
skips exactly the shards whose file exists (files are written atomically, so an existing file is
a finished one).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orl.artifacts import atomic_write_bytes


@dataclass(frozen=True)
class Shards:
    num_items: int
    size: int

    def __len__(self) -> int:
        return (self.num_items + self.size - 1) // self.size

    def range(self, s: int) -> range:
        return range(s * self.size, min((s + 1) * self.size, self.num_items))

    def of_rank(self, rank: int, world: int) -> list[int]:
        return [s for s in range(len(self)) if s % world == rank]


def save_npz(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """Uncompressed npz through a temporary file and a rename."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    atomic_write_bytes(buf.getvalue(), path)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
