"""Frozen-backbone features at the probed depths, their extraction, and an on-disk cache.

Depth names follow OpenSelfSup (the authors' code base): `feat1` .. `feat5` are the outputs of the
stem (`conv1`, after ReLU, before max-pool) and of `layer1` .. `layer4`, average-pooled so that each
is about 9k-d for ResNet-50 at 224x224 (Goyal et al. 2019, used for Table 1 and Table 2):

    feat1  conv1  AvgPool(k10, s10, p4)  64 x 12 x 12  = 9216
    feat2  layer1 AvgPool(k16, s8)      256 x  6 x  6  = 9216
    feat3  layer2 AvgPool(k13, s5)      512 x  4 x  4  = 8192
    feat4  layer3 AvgPool(k8,  s3)     1024 x  3 x  3  = 9216
    feat5  layer4 AvgPool(k6,  s1)     2048 x  2 x  2  = 8192

`avgpool` is the global average of `layer4` (2048-d), the representation the kNN probe uses (DINO).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from orl.artifacts import atomic_save_npy
from orl.augment import IMAGENET_MEAN, IMAGENET_STD
from orl.evaluate.inputs import EvalInputError, read_image
from orl.models.backbone import stage_features
from orl.progress import progress


@dataclass(frozen=True)
class Pool:
    """Which stage map to pool and how; `kernel=None` means a global average."""

    stage: str
    kernel: int | None
    stride: int = 1
    padding: int = 0


POOLS: dict[str, Pool] = {
    "feat1": Pool("conv1", 10, 10, 4),
    "feat2": Pool("layer1", 16, 8),
    "feat3": Pool("layer2", 13, 5),
    "feat4": Pool("layer3", 8, 3),
    "feat5": Pool("layer4", 6, 1),
    "avgpool": Pool("layer4", None),
}
SVM_LAYERS = ("feat1", "feat2", "feat3", "feat4", "feat5")
# How images are decoded is part of a cached feature's identity: features cached when images were
# opened without the EXIF orientation are not reused.
DECODING = "read_image"


def parse_layers(text: str, allowed: Sequence[str] = SVM_LAYERS) -> list[str]:
    """`feat5`, `feat4,feat5` or `all` -> a list of depth names (EvalInputError names a bad one)."""
    names = list(allowed) if text == "all" else [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in allowed:
            raise EvalInputError(
                f"--layers: unknown layer '{name}'; choose {', '.join(allowed)} or all"
            )
    return names


def pool_maps(maps: dict[str, torch.Tensor], layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Average-pool the stage maps to each requested depth; shape (N, C, h, w), not flattened."""
    out: dict[str, torch.Tensor] = {}
    for name in layers:
        pool = POOLS[name]
        x = maps[pool.stage]
        if pool.kernel is None:
            out[name] = F.adaptive_avg_pool2d(x, 1)
        else:
            out[name] = F.avg_pool2d(x, pool.kernel, pool.stride, pool.padding)
    return out


def svm_transform() -> Callable[[Image.Image], torch.Tensor]:
    """Goyal et al. / OpenSelfSup VOC07 input: short side to 256, then squash to 224x224."""
    pipeline: Callable[[Image.Image], torch.Tensor] = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return pipeline


def center_crop_transform(
    resize: int = 256, crop: int = 224
) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation input of the linear, semi-supervised and kNN protocols (resize 256, crop 224)."""
    pipeline: Callable[[Image.Image], torch.Tensor] = transforms.Compose(
        [
            transforms.Resize(resize),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return pipeline


class ImageList(Dataset[tuple[torch.Tensor, int]]):
    """Images from a list of paths, decoded to RGB (`read_image`); yields (tensor, index)."""

    def __init__(self, paths: Sequence[Path], transform: Callable[[Image.Image], torch.Tensor]):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(read_image(self.paths[i])), i


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    paths: Sequence[Path],
    layers: Sequence[str],
    transform: Callable[[Image.Image], torch.Tensor],
    batch_size: int = 64,
    workers: int = 0,
    device: torch.device | None = None,
) -> dict[str, np.ndarray]:
    """Flattened pooled features (float32, not normalised) of every image, one forward per batch."""
    device = device or torch.device("cpu")
    backbone = backbone.eval().to(device)
    loader = DataLoader(ImageList(paths, transform), batch_size=batch_size, num_workers=workers)
    out: dict[str, np.ndarray] = {}
    with progress(total=len(paths), desc="features", unit="img") as bar:
        for images, index in loader:
            pooled = pool_maps(stage_features(backbone, images.to(device)), layers)
            for name, feats in pooled.items():
                flat = feats.flatten(1).float().cpu().numpy()
                if name not in out:
                    out[name] = np.empty((len(paths), flat.shape[1]), dtype=np.float32)
                out[name][index.numpy()] = flat
            bar.update(len(index))
    return out


def cache_key(weights_id: str, dataset_id: str, layer: str, paths: Sequence[Path], how: str) -> str:
    """Hex key of one cached feature matrix: checkpoint, data set, depth, image list, transform."""
    images = hashlib.sha256("\n".join(str(p) for p in paths).encode()).hexdigest()
    blob = json.dumps([weights_id, dataset_id, layer, images, how, DECODING])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


Extractor = Callable[[Sequence[Path], Sequence[str]], dict[str, np.ndarray]]


def cached_features(
    cache_dir: Path,
    weights_id: str,
    dataset_id: str,
    paths: Sequence[Path],
    layers: Sequence[str],
    how: str,
    extract: Extractor,
) -> dict[str, np.ndarray]:
    """Features from `cache_dir` where present; the missing depths are extracted in one pass."""
    files = {
        n: cache_dir / f"{n}-{cache_key(weights_id, dataset_id, n, paths, how)}.npy" for n in layers
    }
    out = {n: np.load(f) for n, f in files.items() if f.is_file()}
    missing = [n for n in layers if n not in out]
    if missing:
        fresh = extract(paths, missing)
        for name in missing:
            atomic_save_npy(fresh[name], files[name])
            out[name] = fresh[name]
    return out


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation with Goyal et al.'s epsilon (x / (||x|| + 1e-5))."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = (x / (norms + 1e-5)).astype(np.float32)
    return out
