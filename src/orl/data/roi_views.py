"""The stage-3 data set: global views plus intra-RoI and inter-RoI patches (sec. 3.1 "Stage 3").

Per image x and epoch: one of its K neighbours n uniformly; one of x's kept boxes b uniformly,
giving the intra-RoI patches (b, jittered b); one of the (x, n) pairs uniformly, giving the
inter-RoI patches (first box cropped from x, second from n). Patches are cropped and warped to
`patch_size` (96) with bilinear resampling, then pass the two asymmetric photometric pipelines
(view-1 settings for the first patch, view-2 for the second), without RandomResizedCrop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from orl.augment import AugmentConfig, global_view, photometric
from orl.config import ConfigError
from orl.data.box_jitter import JitterConfig, jitter_box
from orl.data.crops import Box, crop_and_warp
from orl.data.decode import Decoded, UnusableImage, decode_image
from orl.data.sources import ImageList
from orl.data.views import RobustImageDataset
from orl.discover.store import CorrespondenceStore
from orl.train.config import PretrainConfig

Loaded = TypeVar("Loaded")
View = TypeVar("View")


def _uniform(n: int) -> int:
    return int(torch.randint(n, ()).item())


def draw_orl_views(
    store: CorrespondenceStore,
    jitter: JitterConfig,
    branches: tuple[str, ...],
    index: int,
    loaded: Loaded,
    frame: tuple[int, int],
    load: Callable[[int], Loaded],
    global_view: Callable[[Loaded, int], View],
    patch: Callable[[Loaded, Box, int, int], View],
) -> dict[str, list[View]]:
    """ORL's choices for image `index` in a fixed draw order, rendered by the two callbacks.

    `global_view(image, view)` and `patch(image, box, view, slot)` (box xywh in the image's frame;
    slot 0: the query image, 1: its neighbour) make the views: PIL images here, parameter rows on
    the gpu backend, so both backends draw the same choices from the same seed.
    """
    views = {"image": [global_view(loaded, 1), global_view(loaded, 2)]}
    j = _uniform(store.k)  # the neighbour, shared by the inter-RoI pair
    if "intra" in branches:
        boxes = store.boxes(index)
        b = boxes[_uniform(len(boxes))]
        box: Box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        moved = jitter_box(box, frame[0], frame[1], jitter)
        views["intra"] = [patch(loaded, box, 1, 0), patch(loaded, moved, 2, 0)]
    if "inter" in branches:
        pairs = store.pairs(index, j)
        p = pairs[_uniform(len(pairs))].tolist()
        neighbour = int(store.neighbours(index)[j])
        try:
            other, slot = load(neighbour), 1
        except UnusableImage:
            # the neighbour went bad since stage 2: fall back to the query's own box
            other, slot, p[4:] = loaded, 0, p[:4]
        views["inter"] = [
            patch(loaded, (p[0], p[1], p[2], p[3]), 1, 0),
            patch(other, (p[4], p[5], p[6], p[7]), 2, slot),
        ]
    return views


class ORLDataset(RobustImageDataset[Decoded]):
    """Views of one image for ORL: `image` (two global views), `intra` and `inter` patch pairs."""

    def __init__(
        self,
        images: ImageList,
        store: CorrespondenceStore,
        augment: AugmentConfig,
        jitter: JitterConfig,
        branches: tuple[str, ...],
        seed: int,
        max_side: int | None = None,
    ) -> None:
        super().__init__(images, seed, max_side)
        self.store = store
        self.size = augment.patch_size
        self.jitter = jitter
        self.branches = branches
        self.global_views = (global_view(augment, 1), global_view(augment, 2))
        self.patch_views = (photometric(augment, 1), photometric(augment, 2))

    def load(self, index: int) -> Decoded:
        return decode_image(self.images.path(index), self.max_side)

    def make_views(self, index: int, decoded: Decoded) -> dict[str, list[torch.Tensor]]:
        globals_, patches = self.global_views, self.patch_views
        return draw_orl_views(
            self.store,
            self.jitter,
            self.branches,
            index,
            decoded,
            decoded.frame,
            self.load,
            lambda d, view: globals_[view - 1](d.image),
            lambda d, box, view, _: patches[view - 1](
                crop_and_warp(d.image, box, d.frame, self.size)
            ),
        )


def orl_inputs(
    cfg: PretrainConfig, images: ImageList
) -> tuple[CorrespondenceStore, JitterConfig, tuple[str, ...]]:
    """The correspondence store for `images` (refused if built on another data set), the box
    jitter and the RoI branches the loss weights use."""
    if not cfg.orl.corr:
        raise ConfigError(
            "method 'orl' needs a correspondence store: pass --corr CORR_DIR (from `orl discover`)"
        )
    store = CorrespondenceStore.open(Path(cfg.orl.corr), expected_fingerprint=images.fingerprint)
    o = cfg.orl
    jitter = JitterConfig(
        o.jitter_area_min,
        o.jitter_area_max,
        o.jitter_aspect_min,
        o.jitter_aspect_max,
        o.jitter_shift,
        o.jitter_min_iou,
        o.jitter_attempts,
    )
    branches = tuple(b for b, w in (("intra", o.intra_weight), ("inter", o.inter_weight)) if w)
    return store, jitter, branches


def build_orl_dataset(cfg: PretrainConfig, images: ImageList) -> ORLDataset:
    """The PIL-backend stage-3 data set."""
    store, jitter, branches = orl_inputs(cfg, images)
    return ORLDataset(images, store, cfg.augment, jitter, branches, cfg.seed, cfg.max_side)
