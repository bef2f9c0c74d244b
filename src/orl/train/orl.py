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

Both data backends (`augment.backend`) draw these choices through one function,
`ORLChoices.draw`, in the same order from the same per-sample seed: `ORLDataset` renders them with
PIL in the loader workers, `EncodedORLDataset` as parameter rows that the training device renders
(`data/encoded.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torchvision.ops import box_iou

from orl.augment import AugmentConfig, global_view, photometric
from orl.augment_tensor import draw_global_view, draw_photometric, view_row
from orl.config import ConfigError
from orl.data.crops import Box, crop_and_warp, crop_rect
from orl.data.decode import Decoded, UnusableImage
from orl.data.encoded import EncodedImage, load_encoded
from orl.data.sources import ImageList
from orl.data.views import RobustImageDataset
from orl.discover.store import CorrespondenceStore
from orl.train.config import ORLConfig, PretrainConfig

Loaded = TypeVar("Loaded")
View = TypeVar("View")


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


@dataclass(frozen=True)
class ORLChoices:
    """What stage 3 draws per image from: the correspondence store, the box jitter and the
    branches that have views (`branch_weights`)."""

    store: CorrespondenceStore
    jitter: JitterConfig
    branches: tuple[str, ...]

    def draw(
        self,
        index: int,
        loaded: Loaded,
        frame: tuple[int, int],
        load: Callable[[int], Loaded],
        global_view: Callable[[Loaded, int], View],
        patch: Callable[[Loaded, Box, int, int], View],
    ) -> dict[str, list[View]]:
        """ORL's choices for image `index` in a fixed draw order, rendered by the two callbacks.

        `global_view(image, view)` and `patch(image, box, view, slot)` (box xywh in the image's
        frame; slot 0: the query image, 1: its neighbour) make the views: tensors from PIL images
        on the pil backend, parameter rows on the gpu backend, so both backends draw the same
        choices from the same seed.
        """
        store, branches = self.store, self.branches
        views = {}
        if "image" in branches:
            views["image"] = [global_view(loaded, 1), global_view(loaded, 2)]
        j = _uniform(store.k)  # the neighbour, shared by the inter-RoI pair
        if "intra" in branches:
            boxes = store.boxes(index)
            b = boxes[_uniform(len(boxes))]
            box: Box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            moved = jitter_box(box, frame[0], frame[1], self.jitter)
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
    """Views of one image for ORL, for the chosen branches: `image` (two global views), `intra`
    and `inter` (patch pairs), decoded and augmented with PIL (`augment.backend: pil`)."""

    def __init__(
        self,
        images: ImageList,
        choices: ORLChoices,
        augment: AugmentConfig,
        seed: int,
        max_side: int | None = None,
    ) -> None:
        super().__init__(images, seed, max_side)
        self.choices = choices
        self.size = augment.patch_size
        self.global_views = (global_view(augment, 1), global_view(augment, 2))
        self.patch_views = (photometric(augment, 1), photometric(augment, 2))

    def load(self, index: int) -> Decoded:
        return self.images.decode(index, self.max_side)

    def make_views(self, index: int, decoded: Decoded) -> dict[str, list[torch.Tensor]]:
        globals_, patches = self.global_views, self.patch_views
        return self.choices.draw(
            index,
            decoded,
            decoded.frame,
            self.load,
            lambda d, view: globals_[view - 1](d.image),
            lambda d, box, view, _: patches[view - 1](
                crop_and_warp(d.image, box, d.frame, self.size)
            ),
        )


class EncodedORLDataset(RobustImageDataset[EncodedImage]):
    """`ORLDataset`'s choices as parameter rows (`augment.backend: gpu`); each sample ships its
    image and the inter-RoI neighbour (slot 1), which the device decodes and augments."""

    def __init__(
        self,
        images: ImageList,
        choices: ORLChoices,
        augment: AugmentConfig,
        seed: int,
        max_side: int | None = None,
    ) -> None:
        super().__init__(images, seed, max_side)
        self.choices = choices
        self.augment = augment

    def load(self, index: int) -> EncodedImage:
        return load_encoded(self.images, index, self.max_side)

    def _global(self, image: EncodedImage, view: int) -> torch.Tensor:
        return draw_global_view(self.augment, view, *image.size)

    def _patch(self, image: EncodedImage, box: Box, view: int, slot: int) -> torch.Tensor:
        self.shipped[slot] = image
        rect = crop_rect(box, image.frame, image.size)
        photometric = draw_photometric(self.augment, view)
        return view_row(rect, photometric, self.augment.patch_size, slot)

    def make_views(self, index: int, loaded: EncodedImage) -> dict[str, list[torch.Tensor]]:
        self.shipped = [loaded, loaded]  # slot 1 stays the query when there is no inter branch
        return self.choices.draw(index, loaded, loaded.frame, self.load, self._global, self._patch)


def build_orl_dataset(cfg: PretrainConfig, images: ImageList) -> ORLDataset | EncodedORLDataset:
    """Open the correspondence store for `images` (refused if built on another data set) and
    build the stage-3 data set of the configured `augment.backend`."""
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
    choices = ORLChoices(store, jitter, tuple(branch_weights(o)))
    kind = EncodedORLDataset if cfg.augment.backend == "gpu" else ORLDataset
    return kind(images, choices, cfg.augment, cfg.seed, cfg.max_side)
