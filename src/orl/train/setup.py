"""Builders the training loop calls: data set, networks, optimizer, schedules, resume checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from orl.augment import global_view
from orl.checkpoint import CheckpointError, load_checkpoint
from orl.data.sources import ImageList
from orl.data.views import RobustImageDataset, TwoViewDataset
from orl.models.byol import Encoder, OnlineNetwork, make_target
from orl.models.contrastive import ContrastiveNetwork
from orl.models.moco import KeyQueue
from orl.models.split_bn import convert_split_bn
from orl.train.config import PretrainConfig
from orl.train.lars import LARS, lars_param_groups


def loss_weights(cfg: PretrainConfig) -> dict[str, float]:
    """Weight of each branch's symmetric BYOL loss; branches with weight 0 are not built.

    BYOL: the image term only. ORL (eq. 2): lambda_1 image + lambda_2 intra-RoI + lambda_3
    inter-RoI. Multi-crop BYOL (Table 5c): the image term plus one term per pair of extra crops.
    """
    if cfg.method == "orl":
        weights = {
            "image": cfg.orl.image_weight,
            "intra": cfg.orl.intra_weight,
            "inter": cfg.orl.inter_weight,
        }
        return {k: w for k, w in weights.items() if w != 0}
    if cfg.method == "byol_multicrop":
        return {"image": 1.0, **{f"crops{k}": 1.0 for k in range(cfg.multicrop // 2)}}
    return {"image": 1.0}


def build_dataset(cfg: PretrainConfig, images: ImageList) -> RobustImageDataset:
    """The data set of the configured method; ORL reads the correspondence store."""
    aug = cfg.augment
    if cfg.method == "orl":
        from orl.train.orl import build_orl_dataset

        return build_orl_dataset(cfg, images)
    extra = []
    if cfg.method == "byol_multicrop":
        if cfg.multicrop % 2:
            raise ValueError("'multicrop' must be even: the extra crops are used in pairs")
        small = (global_view(aug, 1, aug.patch_size), global_view(aug, 2, aug.patch_size))
        extra = [small] * (cfg.multicrop // 2)
    return TwoViewDataset(
        images, global_view(aug, 1), global_view(aug, 2), cfg.seed, cfg.max_side, extra
    )


def build_online(cfg: PretrainConfig) -> OnlineNetwork | ContrastiveNetwork:
    """The trained network: encoder + predictors (BYOL family), encoder alone (SimCLR, MoCo v2)."""
    m = cfg.model
    encoder = Encoder(cfg.arch, m.proj_hidden, m.proj_dim, cfg.method)
    online: OnlineNetwork | ContrastiveNetwork
    if cfg.method in ("simclr", "mocov2"):
        online = ContrastiveNetwork(encoder)
    else:
        online = OnlineNetwork(encoder, list(loss_weights(cfg)), m.pred_hidden)
    if m.bn_splits > 1:
        convert_split_bn(online, m.bn_splits)
    return online


def build_target(cfg: PretrainConfig, online: OnlineNetwork | ContrastiveNetwork) -> Encoder | None:
    """BYOL's target / MoCo's key encoder (an EMA copy of the online encoder); SimCLR has none."""
    return None if cfg.method == "simclr" else make_target(online.encoder)


def build_queue(cfg: PretrainConfig) -> KeyQueue | None:
    """MoCo v2's queue of `contrastive.queue_size` keys; the other methods have none."""
    if cfg.method != "mocov2":
        return None
    return KeyQueue(cfg.contrastive.queue_size, cfg.model.proj_dim)


def initialise_from(online: nn.Module, path: Path) -> None:
    """Copy the encoder (and any predictor of the same branch) from another run's checkpoint."""
    state = load_checkpoint(path)["online"]
    own = online.state_dict()
    missing_encoder = [k for k in own if k.startswith("encoder.") and k not in state]
    if missing_encoder:
        raise CheckpointError(f"{path}: its encoder does not match ({missing_encoder[0]} missing)")
    own.update({k: v for k, v in state.items() if k in own and own[k].shape == v.shape})
    online.load_state_dict(own)


def build_optimizer(online: nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """SGD, momentum 0.9, weight decay on all parameters (the authors exclude none), or SimCLR's
    LARS (biases and BN excluded from decay and adaptation); the lr is set from the precomputed
    schedule before every step."""
    if cfg.optim.optimizer == "lars":
        return LARS(
            lars_param_groups(online, cfg.optim.weight_decay),
            lr=0.0,
            momentum=cfg.optim.momentum,
            trust_coefficient=cfg.optim.trust_coefficient,
        )
    return torch.optim.SGD(
        online.parameters(),
        lr=0.0,
        momentum=cfg.optim.momentum,
        weight_decay=cfg.optim.weight_decay,
    )


RESUME_MUST_MATCH = ("arch", "method", "batch_size", "epochs", "model", "augment", "orl", "seed")


def check_resumable(ckpt: dict[str, Any], cfg_dict: dict[str, Any], fingerprint: str) -> None:
    """Refuse to resume a run with another data set or other training settings."""
    if ckpt.get("data_fingerprint") != fingerprint:
        raise CheckpointError(
            "the checkpoint was trained on another data set (fingerprint differs); "
            "use the same `data` or a new --out"
        )
    old = ckpt.get("config", {})
    for key in RESUME_MUST_MATCH:
        if old.get(key) != cfg_dict.get(key):
            _refuse(key)
    # settings that older checkpoints do not record: compared only where they matter
    if old.get("optim", {}).get("optimizer", "sgd") != cfg_dict["optim"]["optimizer"]:
        _refuse("optim.optimizer")
    if cfg_dict["method"] in ("simclr", "mocov2") and old.get("contrastive") != cfg_dict.get(
        "contrastive"
    ):
        _refuse("contrastive")


def _refuse(key: str) -> None:
    raise CheckpointError(
        f"cannot resume: setting '{key}' differs from the interrupted run; "
        "keep it or start a new --out"
    )
