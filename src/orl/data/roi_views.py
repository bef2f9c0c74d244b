"""The stage-3 data set: global views plus intra-RoI and inter-RoI patches (sec. 3.1 "Stage 3").

Per image x and epoch: one of its K neighbours n uniformly; one of x's kept boxes b uniformly,
giving the intra-RoI patches (b, jittered b); one of the (x, n) pairs uniformly, giving the
inter-RoI patches (first box cropped from x, second from n). Patches are cropped and warped to
`patch_size` (96) with bilinear resampling, then pass the two asymmetric photometric pipelines
(view-1 settings for the first patch, view-2 for the second), without RandomResizedCrop.
"""

from __future__ import annotations

from pathlib import Path

import torch

from orl.augment import AugmentConfig, global_view, photometric
from orl.config import ConfigError
from orl.data.box_jitter import JitterConfig, jitter_box
from orl.data.crops import Box, crop_and_warp
from orl.data.decode import Decoded, UnusableImage
from orl.data.sources import ImageList
from orl.data.views import RobustImageDataset
from orl.discover.store import CorrespondenceStore
from orl.train.config import PretrainConfig


def _uniform(n: int) -> int:
    return int(torch.randint(n, ()).item())


class ORLDataset(RobustImageDataset):
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

    def make_views(self, index: int, decoded: Decoded) -> dict[str, list[torch.Tensor]]:
        image, frame = decoded.image, decoded.frame
        views = {"image": [t(image) for t in self.global_views]}
        first, second = self.patch_views
        j = _uniform(self.store.k)  # the neighbour, shared by the inter-RoI pair
        if "intra" in self.branches:
            boxes = self.store.boxes(index)
            b = boxes[_uniform(len(boxes))]
            box: Box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            moved = jitter_box(box, frame[0], frame[1], self.jitter)
            views["intra"] = [
                first(crop_and_warp(image, box, frame, self.size)),
                second(crop_and_warp(image, moved, frame, self.size)),
            ]
        if "inter" in self.branches:
            pairs = self.store.pairs(index, j)
            p = pairs[_uniform(len(pairs))].tolist()
            neighbour = int(self.store.neighbours(index)[j])
            try:
                other = self.load(neighbour)
            except UnusableImage:
                # the neighbour went bad since stage 2: fall back to the query's own box
                other, p[4:] = decoded, p[:4]
            views["inter"] = [
                first(crop_and_warp(image, tuple(p[:4]), frame, self.size)),  # type: ignore[arg-type]
                second(crop_and_warp(other.image, tuple(p[4:]), other.frame, self.size)),  # type: ignore[arg-type]
            ]
        return views


def build_orl_dataset(cfg: PretrainConfig, images: ImageList) -> ORLDataset:
    """Open the correspondence store for `images` (refused if built on another data set)."""
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
    return ORLDataset(images, store, cfg.augment, jitter, branches, cfg.seed, cfg.max_side)
