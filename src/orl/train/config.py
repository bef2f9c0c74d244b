"""Settings of `orl pretrain` (stage 1 BYOL, SimCLR or MoCo v2, stage 3 ORL, multi-crop BYOL),
with paper defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from orl.augment import AugmentConfig
from orl.evaluate.monitor import MonitorConfig
from orl.models.backbone import ARCHS, Init

Method = Literal["byol", "orl", "byol_multicrop", "simclr", "mocov2"]


@dataclass(frozen=True)
class OptimConfig:
    """SGD with warm-up and cosine decay (sec. 3.2, "Optimization"); LARS for SimCLR."""

    optimizer: Literal["sgd", "lars"] = "sgd"  # lars: SimCLR's (train/lars.py)
    lr: float = 0.2  # per 256 images: the peak lr is lr * batch_size / 256 (0.4 at batch 512)
    momentum: float = 0.9
    weight_decay: float = 1e-4  # sgd: on every parameter; lars: not on biases and BN
    trust_coefficient: float = 0.001  # lars only: eta of the trust ratio
    warmup_epochs: float = 4.0
    warmup_ratio: float = 1e-4
    cosine_per_epoch: bool = False
    clip_grad: float = 0.0  # 0 disables; the authors do not clip


@dataclass(frozen=True)
class ModelConfig:
    """Projector/predictor widths and the EMA (sec. 3.2, "Network architecture")."""

    proj_hidden: int = 4096
    proj_dim: int = 256
    pred_hidden: int = 4096
    # EMA decay of the target (BYOL, ORL) or key encoder (MoCo v2), by a cosine from `tau` at
    # step 0 to `tau_end` at the last step, as DINO's teacher momentum. Unset `tau_end`: 1 for the
    # BYOL family (BYOL's schedule), `tau` for MoCo v2 (its constant momentum).
    tau: float = 0.99
    tau_end: float | None = None
    sync_bn: bool = True  # SyncBatchNorm when training on several GPUs (the authors' setting)
    bn_splits: int = 1  # >1: BN statistics per 1/bn_splits of the batch, as N un-synced devices
    # Fresh weights: "authors" = Kaiming-normal fan_in convolutions and head Linears with zero
    # bias (the authors' code, the paper presets); "torchvision" = torchvision's and PyTorch's.
    init: Init = "torchvision"
    # BYOL family: both views of a branch in one forward (fewer, larger kernels) with BN still
    # normalising each view on its own (models/split_bn.py); needs sync_bn: false
    concat_views: bool = False


@dataclass(frozen=True)
class ContrastiveConfig:
    """SimCLR's and MoCo v2's loss settings (the paper's baselines, Tables 1-4)."""

    temperature: float = 0.1  # SimCLR 0.1, MoCo v2 0.2
    queue_size: int = 65536  # mocov2: negatives kept from earlier batches (any size >= batch)


@dataclass(frozen=True)
class ORLConfig:
    """Stage 3 (sec. 3.1, "Stage 3"): loss weights and the intra-RoI box jitter."""

    corr: str | None = None  # correspondence store from `orl discover` (or --corr)
    image_weight: float = 1.0  # lambda_1 (a branch with weight 0 is left out)
    intra_weight: float = 1.0  # lambda_2 (0 = inter-RoI only, Table 5a)
    inter_weight: float = 1.0  # lambda_3 (0 = intra-RoI only, Table 5a)
    jitter_area_min: float = 0.5
    jitter_area_max: float = 2.0
    jitter_aspect_min: float = 0.5
    jitter_aspect_max: float = 2.0
    jitter_shift: float = 0.5
    jitter_min_iou: float = 0.5
    jitter_attempts: int = 200

    def __post_init__(self) -> None:
        weights = (self.image_weight, self.intra_weight, self.inter_weight)
        if min(weights) < 0 or max(weights) <= 0:
            raise ValueError(
                "'orl.image_weight', 'orl.intra_weight', 'orl.inter_weight' must not be negative "
                "and at least one must be positive"
            )
        for name in ("area", "aspect"):  # both are sampled on a log or ratio scale
            lo, hi = getattr(self, f"jitter_{name}_min"), getattr(self, f"jitter_{name}_max")
            if not 0 < lo <= hi:
                raise ValueError(
                    f"'orl.jitter_{name}_min' and 'orl.jitter_{name}_max' must satisfy "
                    f"0 < min <= max, got {lo} and {hi}"
                )
        if self.jitter_shift < 0:
            raise ValueError("'orl.jitter_shift' must not be negative")
        if not 0 <= self.jitter_min_iou < 1:
            raise ValueError("'orl.jitter_min_iou' must lie in [0, 1)")
        if self.jitter_attempts < 1:
            raise ValueError("'orl.jitter_attempts' must be at least 1")


@dataclass(frozen=True)
class WandbConfig:
    """A Weights & Biases run to mirror the metrics into (`pip install 'orl[wandb]'`)."""

    project: str
    entity: str | None = None  # a team; None: the user's default entity


@dataclass(frozen=True)
class LoggingConfig:
    """Where metrics go besides metrics.jsonl and TensorBoard (always written)."""

    wandb: WandbConfig | None = None  # off by default


@dataclass(frozen=True)
class PretrainConfig:
    """Everything `orl pretrain` needs. `data`, `epochs`, `arch`, `method`, `batch_size` (global)
    are top-level in every preset so `--set data=DIR --set epochs=1` works on all of them."""

    data: list[str]
    epochs: int
    arch: str
    method: Method
    batch_size: int
    optim: OptimConfig = field(default_factory=OptimConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    orl: ORLConfig = field(default_factory=ORLConfig)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    multicrop: int = 4  # byol_multicrop: number of extra patch_size crops (paired), Table 5c
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    channels_last: bool = True  # GPU only
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int = 8
    seed: int = 0
    deterministic: bool = False
    max_side: int | None = None  # decode images at most this large (None: full resolution)
    init_from: str | None = None  # start from a checkpoint's online/target weights
    log_every: int = 10
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)  # online kNN; off by default
    save_every_epochs: int = 10
    save_every_steps: int = 0

    def __post_init__(self) -> None:
        if not self.data or not all(str(d).strip() for d in self.data):
            raise ValueError(
                "'data' is empty: set it to an image folder, a .txt image list or a COCO json"
            )
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch '{self.arch}': choose one of {', '.join(ARCHS)}")
        for name in ("epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"'{name}' must be at least 1")
        if self.workers < 0 or self.save_every_epochs < 0 or self.save_every_steps < 0:
            raise ValueError("'workers' and 'save_every_*' must not be negative")
        if self.model.bn_splits < 1 or self.batch_size % self.model.bn_splits:
            raise ValueError("'model.bn_splits' must divide 'batch_size'")
        if self.model.concat_views and self.method in ("simclr", "mocov2"):
            raise ValueError("'model.concat_views' applies to byol, orl and byol_multicrop only")
        if self.model.concat_views and self.model.sync_bn:
            raise ValueError(
                "'model.concat_views' needs 'model.sync_bn: false' (SyncBatchNorm would "
                "normalise the concatenated views together)"
            )
        if self.contrastive.temperature <= 0:
            raise ValueError("'contrastive.temperature' must be positive")
        if self.method == "mocov2" and self.contrastive.queue_size < self.batch_size:
            raise ValueError("'contrastive.queue_size' must hold at least one batch of keys")
        if self.method == "byol_multicrop" and self.multicrop % 2:
            raise ValueError("'multicrop' must be even: the extra crops are used in pairs")
        if self.model.tau_end is None:  # resolved here, so config.yaml states the schedule run
            tau_end = self.model.tau if self.method == "mocov2" else 1.0
            model = dataclasses.replace(self.model, tau_end=tau_end)
            object.__setattr__(self, "model", model)
