"""Stage 3 of ORL (sec. 3.1 "Stage 3"): the RoI views, the box jitter and the three branches.

Per image x and epoch: one of its K neighbours n uniformly; one of x's kept boxes b uniformly,
giving the intra-RoI patches (b, jittered b); one of the (x, n) pairs uniformly, giving the
inter-RoI patches (first box cropped from x, second from n). Patches are cropped and warped to
`patch_size` (96) with bilinear resampling, then pass the two asymmetric photometric pipelines
(view-1 settings for the first patch, view-2 for the second), without RandomResizedCrop. The
image-level branch keeps BYOL's two global views.

The loss is eq. 2, lambda_1 image + lambda_2 intra-RoI + lambda_3 inter-RoI symmetric BYOL losses
(`losses.weighted_branch_loss`), one predictor per branch on the shared encoder
(`models/byol.py: OnlineNetwork`); a branch with weight 0 gets neither views nor a predictor.

Box jitter (footnote 3): up to `attempts` candidates: area' = U(0.5, 2) x w h; aspect
r = exp(U(ln 1/2, ln 2)) (absolute, not relative to the box); w' = round(sqrt(area' r)),
h' = round(sqrt(area' / r)); centre shifted by U(-0.5, 0.5) x w and U(-0.5, 0.5) x h. The first
candidate that lies inside the image and has IoU > 0.5 with the box is used; if none does, the box
itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.ops import box_iou

from orl.augment import AugmentConfig, global_view, photometric
from orl.config import ConfigError
from orl.data.crops import Box, crop_and_warp
from orl.data.decode import Decoded, UnusableImage
from orl.data.sources import ImageList
from orl.data.views import RobustImageDataset
from orl.discover.store import CorrespondenceStore
from orl.train.config import ORLConfig, PretrainConfig


@dataclass(frozen=True)
class JitterConfig:
    area_min: float = 0.5
    area_max: float = 2.0
    aspect_min: float = 0.5
    aspect_max: float = 2.0
    shift: float = 0.5
    min_iou: float = 0.5
    attempts: int = 200


def jitter_box(
    box: tuple[float, float, float, float], width: int, height: int, cfg: JitterConfig
) -> tuple[float, float, float, float]:
    """A jittered xywh copy of `box` inside a width x height image (torch's global RNG).

    All attempts are drawn at once and the first acceptable one is taken, which has the same
    distribution as the authors' sequential loop.
    """
    x, y, w, h = (float(v) for v in box)
    n = cfg.attempts
    area = torch.empty(n, dtype=torch.float64).uniform_(cfg.area_min, cfg.area_max) * (w * h)
    log_r = torch.empty(n, dtype=torch.float64).uniform_(
        math.log(cfg.aspect_min), math.log(cfg.aspect_max)
    )
    ratio = log_r.exp()
    new_w = (area * ratio).sqrt().round()
    new_h = (area / ratio).sqrt().round()
    cx = x + w / 2 + torch.empty(n, dtype=torch.float64).uniform_(-cfg.shift, cfg.shift) * w
    cy = y + h / 2 + torch.empty(n, dtype=torch.float64).uniform_(-cfg.shift, cfg.shift) * h
    x0, y0 = cx - new_w / 2, cy - new_h / 2
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + new_w <= width) & (y0 + new_h <= height)
    inside &= (new_w >= 1) & (new_h >= 1)
    candidates = torch.stack([x0, y0, x0 + new_w, y0 + new_h], dim=1)
    original = torch.tensor([[x, y, x + w, y + h]], dtype=torch.float64)
    ok = inside & (box_iou(original, candidates)[0] > cfg.min_iou)
    hits = ok.nonzero()
    if len(hits) == 0:
        return (x, y, w, h)
    k = int(hits[0, 0])
    return (float(x0[k]), float(y0[k]), float(new_w[k]), float(new_h[k]))


def _uniform(n: int) -> int:
    return int(torch.randint(n, ()).item())


def branch_weights(cfg: ORLConfig) -> dict[str, float]:
    """Eq. 2's lambda_1..3 by branch; a branch weighted 0 is left out (Table 5a)."""
    weights = {"image": cfg.image_weight, "intra": cfg.intra_weight, "inter": cfg.inter_weight}
    return {branch: w for branch, w in weights.items() if w != 0}


class ORLDataset(RobustImageDataset):
    """Views of one image for ORL, for the given `branches`: `image` (two global views), `intra`
    and `inter` (patch pairs)."""

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
        views = {}
        if "image" in self.branches:
            views["image"] = [t(image) for t in self.global_views]
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
    branches = tuple(branch_weights(o))
    return ORLDataset(images, store, cfg.augment, jitter, branches, cfg.seed, cfg.max_side)
