"""The stage-1 data set: two augmented global views per image, robust to unusable files."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch
from PIL import Image
from torch.utils.data import Dataset

from orl.data.decode import Decoded, UnusableImage
from orl.data.sampler import SampleKey
from orl.data.sources import DataSourceError, ImageList

Transform = Callable[[Image.Image], torch.Tensor]
MAX_REPLACEMENTS = 64
Loaded = TypeVar("Loaded")

# Replacements jump far (a run of corrupt files is often one folder); the stride is the first
# number from this prime on that is coprime with the data-set size, so the attempts for one
# index visit distinct images whatever the size (7919 itself cycles when it divides N).
BASE_STRIDE = 7919


@functools.cache
def replacement_stride(n: int) -> int:
    """The first stride >= BASE_STRIDE coprime with `n`: `index + k * stride (mod n)` visits n
    distinct images for k = 0..n-1."""
    stride = BASE_STRIDE
    while math.gcd(stride, n) != 1:
        stride += 1
    return stride


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that is a pure function of (run seed, epoch, image index).

    Augmentations seeded this way are identical whatever the number of workers or ranks and after
    a resume, which is what makes resumed and distributed runs match uninterrupted ones.
    """
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass
class Sample:
    """One training example: its views grouped by branch, as uint8 CHW tensors (PIL backend) or
    as rows of augmentation parameters plus the still-encoded images they read (`encoded`, the
    same number per sample; gpu backend, `data/encoded.py`)."""

    index: int
    views: dict[str, list[torch.Tensor]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    encoded: list[Any] = field(default_factory=list)


@dataclass
class Batch:
    indices: torch.Tensor
    views: dict[str, list[torch.Tensor]]
    skipped: list[tuple[str, str]]
    encoded: list[Any] = field(default_factory=list)  # sample-major: sample b's are b*S .. b*S+S-1

    def pin_memory(self) -> Batch:
        """Called by the data loader's pinning thread, so host-to-device copies are asynchronous."""
        views = {b: [v.pin_memory() for v in vs] for b, vs in self.views.items()}
        return Batch(self.indices, views, self.skipped, self.encoded)


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack each view of each branch into an N-row batch; gather the skipped files and the
    encoded images."""
    first = samples[0].views
    views = {
        branch: [torch.stack([s.views[branch][v] for s in samples]) for v in range(len(vs))]
        for branch, vs in first.items()
    }
    skipped = [item for s in samples for item in s.skipped]
    encoded = [image for s in samples for image in s.encoded]
    return Batch(torch.tensor([s.index for s in samples]), views, skipped, encoded)


class RobustImageDataset(Dataset[Sample], Generic[Loaded]):
    """Base for the training data sets: loading with replacement of unusable files.

    When an image cannot be loaded, a deterministic replacement index is used instead and the
    file is reported in `Sample.skipped`, so a corrupt file never stops a long run and the batch
    keeps its size. Subclasses implement `load(index)` (decoded pixels, or the gpu backend's
    encoded bytes) and `make_views(index, loaded)`; a subclass that ships images with the sample
    sets `shipped` in `make_views`.
    """

    def __init__(self, images: ImageList, seed: int, max_side: int | None = None) -> None:
        self.images = images
        self.seed = seed
        self.max_side = max_side
        self.shipped: list[Any] = []

    def __len__(self) -> int:
        return len(self.images)

    def make_views(self, index: int, loaded: Loaded) -> dict[str, list[torch.Tensor]]:
        raise NotImplementedError

    def load(self, index: int) -> Loaded:
        raise NotImplementedError

    def require_usable(self) -> None:
        """Decode images from the first on, as replacements would be tried, until one works:
        a data set with nothing usable is a one-line DataSourceError before a run starts, not
        a data-loader failure (one decode on a healthy data set)."""
        n = len(self.images)
        reasons = []
        for attempt in range(min(MAX_REPLACEMENTS, n)):
            i = (attempt * replacement_stride(n)) % n
            try:
                self.load(i)
                return
            except UnusableImage as exc:
                reasons.append(f"{self.images.path(i)}: {exc}")
        raise DataSourceError(
            f"{', '.join(self.images.sources)}: none of the {len(reasons)} images tried can be "
            f"decoded (first: {reasons[0]}); check the data set"
        )

    def __getitem__(self, key: SampleKey) -> Sample:
        epoch, index = key
        n = len(self.images)
        skipped: list[tuple[str, str]] = []
        stride = replacement_stride(n)
        for attempt in range(min(MAX_REPLACEMENTS, n)):
            i = (index + attempt * stride) % n
            try:
                loaded = self.load(i)
            except UnusableImage as exc:
                skipped.append((self.images.path(i), str(exc)))
                continue
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(self.seed, epoch, i))
                views = self.make_views(i, loaded)
            return Sample(i, views, skipped, list(self.shipped))
        raise DataSourceError(
            f"{self.images.path(index)} and the {len(skipped) - 1} images tried in its place are "
            f"all unusable (last: {skipped[-1][1]}); check the data set"
        )


class TwoViewDataset(RobustImageDataset[Decoded]):
    """Stage 1 (BYOL): two global views v, v' of one image (sec. 3.1, "Stage 1")."""

    def __init__(
        self,
        images: ImageList,
        view1: Transform,
        view2: Transform,
        seed: int,
        max_side: int | None = None,
        extra_crops: Sequence[tuple[Transform, Transform]] = (),
    ) -> None:
        super().__init__(images, seed, max_side)
        self.view1 = view1
        self.view2 = view2
        self.extra_crops = list(extra_crops)

    def load(self, index: int) -> Decoded:
        return self.images.decode(index, self.max_side)

    def make_views(self, index: int, decoded: Decoded) -> dict[str, list[torch.Tensor]]:
        image = decoded.image
        views = {"image": [self.view1(image), self.view2(image)]}
        for k, (a, b) in enumerate(self.extra_crops):
            views[f"crops{k}"] = [a(image), b(image)]
        return views
