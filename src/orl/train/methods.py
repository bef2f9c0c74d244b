"""The one method switch: everything a training method needs, built in one place.

Stage 1 is BYOL (sec. 3.1 "Stage 1"; or the paper's image-level baselines SimCLR and MoCo v2,
Tables 1-4), stage 3 is ORL (sec. 3.1 "Stage 3", `train/orl.py`) and multi-crop BYOL is the
baseline of Table 5c. They differ only in what `build_method` returns: the trained network, the EMA
network, MoCo's queue, the objective and the data set. The training loop has no method branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from orl.augment import global_view
from orl.data.encoded import EncodedTwoViewDataset
from orl.data.sources import ImageList
from orl.data.views import RobustImageDataset, TwoViewDataset
from orl.models.byol import Encoder, OnlineNetwork, make_target
from orl.models.contrastive import ContrastiveNetwork
from orl.models.moco import KeyQueue
from orl.models.split_bn import convert_split_bn
from orl.train.config import PretrainConfig
from orl.train.objectives import Objective, byol_objective, mocov2_objective, simclr_objective
from orl.train.orl import branch_weights, build_orl_dataset

Online = TypeVar("Online", OnlineNetwork, ContrastiveNetwork)


@dataclass(frozen=True)
class MethodParts:
    """What the loop trains and how, for one method."""

    online: OnlineNetwork | ContrastiveNetwork  # trained: encoder (+ one predictor per branch)
    target: Encoder | None  # EMA of the online encoder: BYOL's target, MoCo's key encoder
    queue: KeyQueue | None  # MoCo v2's negatives (a buffer, so it is checkpointed)
    objective: Objective  # forward passes and loss of one step
    dataset: RobustImageDataset[Any]  # the views each sample gives, by branch
    branches: tuple[str, ...]  # the loss terms the objective returns (logged as loss_<branch>)
    resume_settings: tuple[str, ...]  # settings of this method a resumed run must keep


def build_method(cfg: PretrainConfig, images: ImageList) -> MethodParts:
    """The networks, objective and data set of `cfg.method` (a new method is one more case)."""
    match cfg.method:
        case "byol":
            return _byol_family(cfg, {"image": 1.0}, two_view_dataset(cfg, images), ())
        case "byol_multicrop":
            weights = {"image": 1.0, **{f"crops{k}": 1.0 for k in range(cfg.multicrop // 2)}}
            dataset = two_view_dataset(cfg, images, cfg.multicrop // 2)
            return _byol_family(cfg, weights, dataset, ("multicrop",))
        case "orl":
            orl_views = build_orl_dataset(cfg, images)
            return _byol_family(cfg, branch_weights(cfg.orl), orl_views, ("orl",))
        case "simclr":
            online = _split_bn(cfg, ContrastiveNetwork(_encoder(cfg)))
            objective = partial(simclr_objective, temperature=cfg.contrastive.temperature)
            dataset = two_view_dataset(cfg, images)
            return MethodParts(online, None, None, objective, dataset, ("image",), ("contrastive",))
        case "mocov2":
            online = _split_bn(cfg, ContrastiveNetwork(_encoder(cfg)))
            key_encoder = make_target(online.encoder)
            queue = KeyQueue(cfg.contrastive.queue_size, cfg.model.proj_dim)
            temperature = cfg.contrastive.temperature
            objective = partial(mocov2_objective, queue=queue, temperature=temperature)
            dataset = two_view_dataset(cfg, images)
            settings = ("contrastive",)
            return MethodParts(online, key_encoder, queue, objective, dataset, ("image",), settings)


def two_view_dataset(
    cfg: PretrainConfig, images: ImageList, crop_pairs: int = 0
) -> TwoViewDataset | EncodedTwoViewDataset:
    """BYOL's two global views (sec. 3.1 "Stage 1"), plus `crop_pairs` pairs of `patch_size`
    crops for multi-crop BYOL (Table 5c), on the configured `augment.backend`."""
    aug = cfg.augment
    if aug.backend == "gpu":
        return EncodedTwoViewDataset(images, aug, cfg.seed, cfg.max_side, crop_pairs)
    small = (global_view(aug, 1, aug.patch_size), global_view(aug, 2, aug.patch_size))
    views = (global_view(aug, 1), global_view(aug, 2))
    return TwoViewDataset(images, *views, cfg.seed, cfg.max_side, [small] * crop_pairs)


def _encoder(cfg: PretrainConfig) -> Encoder:
    m = cfg.model
    return Encoder(cfg.arch, m.proj_hidden, m.proj_dim, cfg.method, m.init)


def _split_bn(cfg: PretrainConfig, online: Online) -> Online:
    """BN statistics per 1/bn_splits of the batch (`model.bn_splits`), replaced in place. With
    `model.concat_views` each view is half of the joint batch, so every view's slice gets its own
    statistics too."""
    splits = cfg.model.bn_splits * (2 if cfg.model.concat_views else 1)
    if splits > 1:
        convert_split_bn(online, splits)
    return online


def _byol_family(
    cfg: PretrainConfig,
    weights: dict[str, float],
    dataset: RobustImageDataset[Any],
    settings: tuple[str, ...],
) -> MethodParts:
    """BYOL's online network with one predictor per weighted branch, its target, eq. 2's loss."""
    network = OnlineNetwork(_encoder(cfg), list(weights), cfg.model.pred_hidden, cfg.model.init)
    online = _split_bn(cfg, network)
    objective = partial(byol_objective, weights=weights, concat=cfg.model.concat_views)
    target = make_target(online.encoder)
    return MethodParts(online, target, None, objective, dataset, tuple(weights), settings)
