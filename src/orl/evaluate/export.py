"""Export the evaluated backbone for other code bases (sec. 4.1, "Object detection and
segmentation", Table 4; Detectron2's `convert-torchvision-to-d2.py` key mapping), for timm, and
as a folder that `huggingface_hub` uploads as is (`config.json`, `model.safetensors`, `README.md`).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision

from orl.artifacts import atomic_open, atomic_write_bytes, atomic_write_text
from orl.checkpoint import atomic_save
from orl.evaluate.detectron2 import detectron2_key
from orl.evaluate.inputs import EvalInputError
from orl.evaluate.model_card import TrainingFacts, model_card
from orl.models.backbone import build_backbone
from orl.models.pretrained import Pretrained

FORMATS = ("torchvision", "timm", "safetensors", "detectron2")
# The input the evaluations use (resize 256, centre crop 224, ImageNet statistics), in timm's terms.
TIMM_DATA_CONFIG = {
    "input_size": [3, 224, 224],
    "interpolation": "bilinear",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "crop_pct": 0.875,
    "crop_mode": "center",
}


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


def detectron2_checkpoint(weights: Pretrained) -> dict[str, Any]:
    """`{"model": {d2 name: numpy array}, "__author__": "orl", "matching_heuristics": True}`."""
    model = {detectron2_key(k): v.detach().cpu().numpy() for k, v in weights.backbone.items()}
    return {"model": model, "__author__": "orl", "matching_heuristics": True}


def save_pickle_atomic(obj: Any, path: Path) -> None:
    """Pickle to a temp file in the same folder, then rename over `path`."""
    with atomic_open(path) as f:
        pickle.dump(obj, f)


def timm_hub_config(weights: Pretrained) -> dict[str, Any]:
    """timm's `config.json` for a classifier-free ResNet (`num_classes: 0`, pooled features)."""
    _, width = build_backbone(weights.arch)
    return {
        "architecture": weights.arch,
        "num_classes": 0,
        "num_features": width,
        "global_pool": "avg",
        "pretrained_cfg": {
            **TIMM_DATA_CONFIG,
            "num_classes": 0,
            "first_conv": "conv1",
            "classifier": "fc",
        },
    }


def export_hub_folder(
    weights: Pretrained,
    out: Path,
    facts: TrainingFacts | None,
    results: Sequence[tuple[str, str, str, str]] = (),
) -> Path:
    """`out/model.safetensors` (the backbone without `fc`), `out/config.json`, `out/README.md`.

    The state dict loads with `strict=True` into timm's `create_model(arch, num_classes=0)` and
    into a torchvision ResNet whose `fc` is an identity; `timm.create_model("local-dir:OUT")`
    (or "hf-hub:OWNER/NAME" once uploaded) builds and loads it in one call.
    """
    try:
        from safetensors.torch import save
    except ImportError as exc:
        raise EvalInputError(
            "--format safetensors needs the safetensors package: pip install 'orl[export]'"
        ) from exc
    if out.exists() and not out.is_dir():
        raise EvalInputError(f"{out}: is a file; --format safetensors writes a folder")
    state = {k: v.detach().cpu().contiguous().clone() for k, v in weights.backbone.items()}
    config = timm_hub_config(weights)
    atomic_write_bytes(save(state, metadata={"format": "pt"}), out / "model.safetensors")
    atomic_write_text(json.dumps(config, indent=2) + "\n", out / "config.json")
    atomic_write_text(
        model_card(weights, config["num_features"], facts, results), out / "README.md"
    )
    return out


def export_weights(weights: Pretrained, fmt: str, out: Path) -> Path:
    """Write `weights` as a torchvision/timm state dict (torch.save) or a Detectron2 pickle.

    timm's ResNets name their parameters as torchvision's do, so both formats are the same file.
    """
    if fmt in ("torchvision", "timm"):
        atomic_save(torchvision_state_dict(weights), out)
    elif fmt == "detectron2":
        save_pickle_atomic(detectron2_checkpoint(weights), out)
    else:
        raise ValueError(f"unknown format '{fmt}': choose {', '.join(FORMATS)}")
    return out
