"""The scene benchmark's supervised ceiling: the pre-training network trained with the labels.

Not a protocol of the paper: it bounds the scene benchmark (docs/scenes.md) from above, the way
supervised ImageNet rows bound the paper's transfer tables (Table 1). The backbone of a
pre-training preset (`PretrainConfig`) is trained from random init on the TRAIN split, with a
linear classifier on its pooled features, for one of three targets:
- `scene`: multi-label scene classification, one BCE term per category of the COCO JSON;
- `crops`: object-crop classification (cross-entropy over the categories), one sample per object;
- `instances`: the same crops labelled by their `instance_id` (an instance-level ceiling).

Everything else is the preset's: backbone builder, batch size, SGD (momentum, weight decay on every
parameter), peak lr `optim.lr x batch / 256` with linear warm-up and per-step cosine
(`train/schedules.py`), seed, and compute: the same number of samples seen as pre-training, i.e.
train scenes x epochs whatever the target (a crop counts as one sample, like a scene; BYOL forwards
two views of each image, so pre-training does twice the forward passes for the same images seen).
The backbone is saved as a torchvision state dict, which `orl eval scenes --checkpoint` reads.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from orl.artifacts import atomic_open, atomic_write_text
from orl.augment import AugmentConfig, global_view, normalize_on_device, photometric
from orl.data.crops import crop_and_warp
from orl.data.sampler import SampleKey, StepBatchSampler
from orl.data.views import sample_seed
from orl.evaluate.average_precision import voc_average_precision
from orl.evaluate.inputs import EvalInputError
from orl.evaluate.scene_data import SceneSplit, decode_scenes, read_scene_split
from orl.evaluate.scene_features import (
    backbone_featurizer,
    crop_batches,
    featurize,
    scene_batches,
    square_crop,
)
from orl.models.backbone import build_backbone
from orl.train.config import PretrainConfig
from orl.train.orl import JitterConfig, jitter_box
from orl.train.schedules import lr_schedule

Target = Literal["scene", "crops", "instances"]
Augment = Literal["crop_flip", "byol"]
TARGETS: tuple[Target, ...] = ("scene", "crops", "instances")
AUGMENTS: tuple[Augment, ...] = ("crop_flip", "byol")
WEIGHTS_FILE = "backbone.pth"
SUMMARY_FILE = "summary.json"
# Stage 3's intra-RoI jitter (area 0.5-2x, centre shift, IoU > 0.5), kept square.
SQUARE_JITTER = JitterConfig(aspect_min=1.0, aspect_max=1.0)


def preset_backbone(cfg: PretrainConfig) -> tuple[nn.Module, int]:
    """The backbone `orl pretrain` builds for `cfg`, and its pooled feature width.

    `build_backbone(cfg.arch, ...)` receives every `model.*` setting that it takes as a keyword
    argument (such as a stem or an init mode), so options added to both reach this network too.
    """
    accepted = inspect.signature(build_backbone).parameters
    options = {
        f.name: getattr(cfg.model, f.name)
        for f in dataclasses.fields(cfg.model)
        if f.name in accepted and f.name != "arch"
    }
    return build_backbone(cfg.arch, **options)


@dataclass(frozen=True)
class LabelledSamples:
    """One target's training samples: the scene each comes from, its object box and its label."""

    owner: np.ndarray  # (M,) scene index
    boxes: np.ndarray | None  # (M, 4) visible boxes, xywh; None: whole scenes
    labels: np.ndarray  # (M,) class index, or (M, C) 0/1 rows for the multi-label scene target
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.owner)


def labelled_samples(split: SceneSplit, target: Target) -> LabelledSamples:
    """Whole scenes with their category sets, or every object with its category or instance."""
    if target == "scene":
        labels = np.zeros((len(split), len(split.categories)), dtype=np.float32)
        labels[split.obj_image, split.obj_category] = 1.0
        return LabelledSamples(np.arange(len(split)), None, labels, split.categories)
    if target == "crops":
        return LabelledSamples(split.obj_image, split.obj_box, split.obj_category, split.categories)
    ids, index = np.unique(split.obj_instance, return_inverse=True)
    names = tuple(f"instance_{i}" for i in ids.tolist())
    return LabelledSamples(split.obj_image, split.obj_box, index.astype(np.int64), names)


def view_config(aug: AugmentConfig, augment: Augment) -> AugmentConfig:
    """`byol`: BYOL's view-1 settings as they are; `crop_flip`: every photometric op off."""
    if augment == "byol":
        return aug
    return dataclasses.replace(
        aug, jitter_p=0.0, grayscale_p=0.0, view1_blur_p=0.0, view1_solarize_p=0.0
    )


class LabelledScenes(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Augmented training samples cut from the decoded split, as uint8 CHW tensors.

    Whole scenes: BYOL's view-1 pipeline (`augment.global_view`; crop and flip only for
    `crop_flip`). Objects: the square crop of the evaluation (`scene_features.square_crop`),
    jittered like stage 3's RoIs and warped to `crop_size`, then the view-1 photometric part.
    Randomness is seeded per (seed, round, sample) as for the pre-training views.
    """

    def __init__(
        self,
        pixels: np.ndarray,
        samples: LabelledSamples,
        aug: AugmentConfig,
        crop_size: int,
        seed: int,
    ) -> None:
        self.pixels, self.samples, self.crop_size, self.seed = pixels, samples, crop_size, seed
        self.scene_view = global_view(aug, 1)
        self.crop_view = photometric(aug, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        image = Image.fromarray(self.pixels[self.samples.owner[index]])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            if self.samples.boxes is None:
                x = self.scene_view(image)
            else:
                x = self.crop_view(self._jittered_crop(image, self.samples.boxes[index]))
        return x, torch.as_tensor(self.samples.labels[index])

    def _jittered_crop(self, image: Image.Image, box: np.ndarray) -> Image.Image:
        width, height = image.size
        x0, y0, side = square_crop(box, width, height)
        square = jitter_box((x0, y0, side, side), width, height, SQUARE_JITTER)
        return crop_and_warp(image, square, (width, height), self.crop_size)


def training_fit(
    backbone: nn.Module,
    head: nn.Linear,
    pixels: np.ndarray,
    samples: LabelledSamples,
    size: int,
    device: torch.device,
) -> tuple[float, float]:
    """(score, chance) on the training samples in eval mode, without augmentation.

    The inputs are the evaluation's: whole scenes squashed to `size`, or square object crops at
    `size`. Scene target: mean AP over the categories with a positive (chance: their mean
    frequency, the expected AP of a random ranking); crops and instances: top-1 accuracy (chance:
    the most frequent class's share).
    """
    if samples.boxes is None:
        batches = scene_batches(pixels, size, 128)
    else:
        batches = crop_batches(pixels, samples.owner, samples.boxes, size, 128)
    features = featurize(batches, {"net": backbone_featurizer(backbone, device)})["net"]
    with torch.no_grad():
        scores = head.cpu().float()(torch.from_numpy(features)).numpy()
    if samples.boxes is None:
        present = [c for c in range(samples.labels.shape[1]) if samples.labels[:, c].any()]
        aps = [voc_average_precision(2 * samples.labels[:, c] - 1, scores[:, c]) for c in present]
        return float(np.mean(aps)), float(samples.labels[:, present].mean())
    labels = samples.labels
    majority = np.bincount(labels).max() / len(labels)
    return float(np.mean(scores.argmax(1) == labels)), float(majority)


def _device(cfg: PretrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _run_steps(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    lrs: np.ndarray,
    multi_label: bool,
    device: torch.device,
    amp: bool,
    desc: str,
) -> float:
    """Per step: lr from the precomputed schedule, forward, BCE or cross-entropy, SGD step.

    Returns the last step's loss.
    """
    loss = torch.full((), math.nan)
    for step, (x, y) in enumerate(tqdm(batches, total=len(lrs), desc=desc)):
        for group in optimizer.param_groups:
            group["lr"] = float(lrs[step])
        x, y = normalize_on_device(x.to(device, non_blocking=True)), y.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(x).float()
        if multi_label:
            loss = F.binary_cross_entropy_with_logits(logits, y)
        else:
            loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            raise ValueError(f"loss became {loss.item()} at step {step}: lower optim.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.item())


def train_supervised(
    cfg: PretrainConfig,
    scenes_dir: Path,
    target: Target,
    augment: Augment = "crop_flip",
    epochs: int | None = None,
    crop_size: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the preset's backbone with `target`'s labels; return it and a summary.

    Steps = (train scenes // batch) x epochs (default: the preset's), as pre-training; the samples
    of crops and instances are drawn in seeded rounds over all objects. On a GPU the forward runs
    under bf16 autocast unless `precision: fp32`.
    """
    split = read_scene_split(scenes_dir, "train")
    samples = labelled_samples(split, target)
    epochs, crop_size = epochs or cfg.epochs, crop_size or cfg.augment.patch_size
    steps_per_epoch, batch = len(split) // cfg.batch_size, cfg.batch_size
    if steps_per_epoch == 0 or len(samples) < batch:
        raise EvalInputError(f"{scenes_dir}: fewer training samples than batch_size {batch}")
    total = steps_per_epoch * epochs
    device, pixels = _device(cfg), decode_scenes(split)
    torch.manual_seed(cfg.seed)
    backbone, width = preset_backbone(cfg)
    head = nn.Linear(width, len(samples.classes))
    net = nn.Sequential(backbone, head).to(device).train()
    optimizer = torch.optim.SGD(
        net.parameters(), lr=0.0, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
    )
    o = cfg.optim
    lrs = lr_schedule(o.lr * batch / 256, total, steps_per_epoch, o.warmup_epochs, o.warmup_ratio,
                      o.cosine_per_epoch)  # fmt: skip
    views = view_config(cfg.augment, augment)
    dataset = LabelledScenes(pixels, samples, views, crop_size, cfg.seed)
    rounds = math.ceil(total / (len(samples) // batch))
    sampler = StepBatchSampler(len(samples), batch, rounds, seed=cfg.seed)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers)
    amp = device.type == "cuda" and cfg.precision != "fp32"
    final_loss = _run_steps(net, optimizer, islice(loader, total), lrs, samples.boxes is None,
                            device, amp, target)  # fmt: skip
    size = cfg.augment.image_size if samples.boxes is None else crop_size
    fit, chance = training_fit(backbone, head, pixels, samples, size, device)
    summary = {
        "target": target, "augment": augment, "arch": cfg.arch, "epochs": epochs, "steps": total,
        "batch_size": batch, "samples_seen": total * batch, "n_samples": len(samples),
        "n_classes": len(samples.classes), "input_size": size, "final_loss": final_loss,
        "train_score": fit, "train_chance": chance, "seed": cfg.seed,
    }  # fmt: skip
    return backbone, summary


def check_output(out: Path, force: bool) -> None:
    """Refuse an output folder that already holds a run, unless `force`."""
    if not force and any((out / name).exists() for name in (WEIGHTS_FILE, SUMMARY_FILE)):
        raise EvalInputError(
            f"{out}: already holds a supervised run; pass --force to overwrite it or choose "
            "another --out"
        )


def save_supervised(backbone: nn.Module, summary: dict[str, Any], out: Path) -> Path:
    """The backbone as a torchvision state dict (no `fc`), then the summary; both atomic."""
    weights = out / WEIGHTS_FILE
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    with atomic_open(weights) as f:
        torch.save(state, f)
    atomic_write_text(json.dumps(summary, indent=2) + "\n", out / SUMMARY_FILE)
    return weights
