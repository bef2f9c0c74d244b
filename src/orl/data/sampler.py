"""Global-step batch sampling that is the same on any number of ranks and resumes mid-epoch.

Each epoch is a seeded permutation of the data set; global step s takes the contiguous block
`perm[b*B : (b+1)*B]` (b = s mod steps-per-epoch, B = global batch) and rank r reads the r-th of W
equal slices of it. So the set of images in a global step does not depend on the world size, the
incomplete last batch is dropped (as BN needs full batches), and resuming at step s is exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

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
    ) -> None:
        self.steps_per_epoch = steps_per_epoch(num_images, global_batch, world_size)
        self.num_images = num_images
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.total_steps = self.steps_per_epoch * epochs
        self.seed = seed
        self.rank = rank
        self.start_step = start_step

    def permutation(self, epoch: int) -> torch.Tensor:
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
