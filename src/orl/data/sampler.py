"""Global-step batch sampling that is the same on any number of ranks and resumes mid-epoch.

Each epoch is a seeded permutation of the data set; global step s takes the contiguous block
`perm[b*B : (b+1)*B]` (b = s mod steps-per-epoch, B = global batch) and rank r reads the r-th of W
equal slices of it. So the set of images in a global step does not depend on the world size, the
incomplete last batch is dropped (as BN needs full batches), and resuming at step s is exact.

For images read from tar shards (`data/shards.py`) the epoch's order is two-level instead: the
shards in a seeded random order, each shard's samples in a seeded random order within it
(`shards.shard_order`), so a step's block, and each rank's and loader worker's slice of it, lies
in one shard (two at a shard boundary): readers move from shard to shard rather than jumping over
the whole data set. Resuming at step s is exact here too: epoch s // steps_per_epoch, offset
(s mod steps_per_epoch) x B into that epoch's order, which depends on (seed, epoch) only.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from orl.data.shards import shard_order

SampleKey = tuple[int, int]  # (epoch, index): the data set derives per-sample randomness from it


def steps_per_epoch(num_images: int, global_batch: int, world_size: int = 1) -> int:
    """Full global batches per epoch (the incomplete last one is dropped); ValueError when the
    batch cannot be split over the ranks or is larger than the data set."""
    if global_batch % world_size:
        raise ValueError(
            f"batch_size {global_batch} is not divisible by the world size {world_size}"
        )
    if num_images < global_batch:
        raise ValueError(
            f"batch_size {global_batch} is larger than the data set ({num_images} images)"
        )
    return num_images // global_batch


class StepBatchSampler:
    """Yields, for this rank, the list of (epoch, index) keys of every step from `start_step`."""

    def __init__(
        self,
        num_images: int,
        global_batch: int,
        epochs: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        shard_starts: np.ndarray | None = None,
    ) -> None:
        self.steps_per_epoch = steps_per_epoch(num_images, global_batch, world_size)
        self.num_images = num_images
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.total_steps = self.steps_per_epoch * epochs
        self.seed = seed
        self.rank = rank
        self.start_step = start_step
        self.shard_starts = shard_starts  # first position of each shard's run of images

    def permutation(self, epoch: int) -> torch.Tensor:
        if self.shard_starts is not None:
            rng = np.random.default_rng([self.seed % 2**63, epoch])
            order = shard_order(self.shard_starts, self.num_images, rng)
            return torch.from_numpy(np.concatenate(list(order)))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_images, generator=g)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        epoch, perm = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start_step, self.total_steps):
            e, b = divmod(step, self.steps_per_epoch)
            if e != epoch:
                epoch, perm = e, self.permutation(e)
            lo = b * self.global_batch + self.rank * self.local_batch
            yield [(epoch, int(i)) for i in perm[lo : lo + self.local_batch]]
