"""Export the evaluated backbone for other code bases (sec. 4.1, "Object detection and
segmentation", Table 4; Detectron2's `convert-torchvision-to-d2.py` key mapping).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
import torchvision

from orl.artifacts import atomic_open
from orl.checkpoint import atomic_save
from orl.models.pretrained import Pretrained

FORMATS = ("torchvision", "detectron2")


def torchvision_state_dict(weights: Pretrained, fc_seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict that loads with `strict=True` into `torchvision.models.<arch>()`.

    Pre-training has no classifier, so `fc` is a fresh torchvision initialisation (seeded); every
    downstream protocol replaces or ignores it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fc_seed)
        fresh = getattr(torchvision.models, weights.arch)(weights=None)
    state = dict(fresh.state_dict())
    missing = [k for k in state if not k.startswith("fc.") and k not in weights.backbone]
    if missing:
        raise ValueError(f"backbone weights lack {len(missing)} keys, e.g. {missing[0]}")
    state.update({k: v.detach().clone() for k, v in weights.backbone.items()})
    return state


def detectron2_key(key: str) -> str:
    """Rename one torchvision ResNet key the way Detectron2's conversion script does."""
    if not key.startswith("layer"):
        key = "stem." + key
    key = re.sub(r"layer(\d)", lambda m: f"res{int(m.group(1)) + 1}", key)
    key = re.sub(r"bn(\d)", r"conv\1.norm", key)
    return key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def detectron2_checkpoint(weights: Pretrained) -> dict[str, Any]:
    """`{"model": {d2 name: numpy array}, "__author__": "orl", "matching_heuristics": True}`."""
    model = {detectron2_key(k): v.detach().cpu().numpy() for k, v in weights.backbone.items()}
    return {"model": model, "__author__": "orl", "matching_heuristics": True}


def save_pickle_atomic(obj: Any, path: Path) -> None:
    """Pickle to a temp file in the same folder, then rename over `path`."""
    with atomic_open(path) as f:
        pickle.dump(obj, f)


def export_weights(weights: Pretrained, fmt: str, out: Path) -> Path:
    """Write `weights` as a torchvision state dict (torch.save) or a Detectron2 pickle."""
    if fmt == "torchvision":
        atomic_save(torchvision_state_dict(weights), out)
    elif fmt == "detectron2":
        save_pickle_atomic(detectron2_checkpoint(weights), out)
    else:
        raise ValueError(f"unknown format '{fmt}': choose {', '.join(FORMATS)}")
    return out
