"""What every evaluation command reads: the network to evaluate, the folders it needs and their
images.

`--checkpoint` takes any ResNet that `orl export` writes or another library publishes, so that
networks from elsewhere are compared on one protocol:

- an `orl pretrain` checkpoint (the online backbone);
- a torchvision or timm ResNet state dict (`torch.save`; timm's ResNets name their weights as
  torchvision's; a `{"state_dict": ...}` wrapper is unwrapped), loaded with `weights_only`;
- a safetensors file, or a folder holding `model.safetensors` (`orl export --format
  safetensors`, a Hugging Face Hub download);
- a Detectron2 weight pickle (`.pkl`: `orl export --format detectron2`, or a detector trained
  with Detectron2, whose `backbone.bottom_up.*` is read), unpickled without running code
  (`evaluate/detectron2.py`);
- `random:ARCH` for the random-init baseline of Tables 1-4 ("Random" rows).

A classifier (`fc.*`) is dropped; the architecture is the torchvision ResNet with exactly these
weight names and shapes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torchvision
from PIL import Image

from orl.checkpoint import CheckpointError, file_sha256, safe_torch_load
from orl.data.decode import UnusableImage, load_rgb
from orl.evaluate.detectron2 import read_detectron2_pickle
from orl.models.backbone import ARCHS, build_backbone
from orl.models.pretrained import Pretrained, load_pretrained


class EvalInputError(ValueError):
    """Unusable user input; the message is one line naming the file and the fix."""


def random_weights(arch: str, seed: int = 0) -> Pretrained:
    """Seeded random initialisation (torchvision's own init), without touching the global RNG."""
    if arch not in ARCHS:
        raise EvalInputError(f"random:{arch}: unknown arch; use random:<{'|'.join(ARCHS)}>")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net, _ = build_backbone(arch)
    return Pretrained(arch, dict(net.state_dict()), f"random:{arch}:seed{seed}")


def _infer_arch(state: dict[str, torch.Tensor]) -> str | None:
    """The torchvision ResNet whose state (minus fc) has exactly these keys and shapes."""
    for arch in ARCHS:
        ref = getattr(torchvision.models, arch)(weights=None).state_dict()
        ref = {k: v.shape for k, v in ref.items() if not k.startswith("fc.")}
        if ref.keys() == state.keys() and all(ref[k] == state[k].shape for k in ref):
            return arch
    return None


def load_weights(spec: str, seed: int = 0) -> Pretrained:
    """Resolve `--checkpoint` (see the module docstring)."""
    if spec.startswith("random:"):
        return random_weights(spec.split(":", 1)[1], seed)
    path = Path(spec)
    if path.is_dir() and (path / HUB_WEIGHTS).is_file():
        path = path / HUB_WEIGHTS
    if not path.is_file():
        raise EvalInputError(
            f"{path}: no such checkpoint file; pass an orl checkpoint, a torchvision/timm state "
            f"dict, a safetensors file or folder, a Detectron2 .pkl or random:ARCH"
        )
    if path.suffix == ".safetensors":
        return _foreign(path, "safetensors", _read_safetensors(path))
    if path.suffix == ".pkl":
        try:
            return _foreign(path, "detectron2", read_detectron2_pickle(path))
        except (pickle.UnpicklingError, ValueError, EOFError) as exc:
            raise EvalInputError(f"{path}: not a usable Detectron2 weight pickle ({exc})") from exc
    try:
        obj = safe_torch_load(path)
    except CheckpointError as exc:
        raise EvalInputError(str(exc)) from exc
    if isinstance(obj, dict) and obj.get("format") == "orl-checkpoint":
        try:
            return load_pretrained(path)
        except CheckpointError as exc:
            raise EvalInputError(str(exc)) from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # timm's training checkpoints
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _foreign(path, "torchvision", obj)
    raise EvalInputError(
        f"{path}: neither an orl checkpoint nor a ResNet state dict; export one with "
        "`orl export --format torchvision`"
    )


HUB_WEIGHTS = "model.safetensors"


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as exc:
        raise EvalInputError(
            f"{path}: reading safetensors needs the safetensors package: pip install 'orl[export]'"
        ) from exc
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise EvalInputError(f"{path}: unreadable safetensors file ({exc})") from exc


def _foreign(path: Path, kind: str, state: dict[str, torch.Tensor]) -> Pretrained:
    """A ResNet state dict from another library: `fc` dropped, arch inferred from the weights."""
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    arch = _infer_arch(backbone)
    if arch is None:
        raise EvalInputError(
            f"{path}: its {kind} weights are not a torchvision ResNet "
            f"({', '.join(ARCHS)}) with the same names and shapes"
        )
    sha256 = file_sha256(path)
    return Pretrained(arch, backbone, f"{kind}:{sha256}", sha256=sha256)


def require_dir(path: Path, what: str) -> Path:
    """`path` if it is a folder, else a one-line EvalInputError saying what was expected there."""
    if not path.is_dir():
        raise EvalInputError(f"{path}: no such folder (expected {what})")
    return path


def read_image(path: str | Path) -> Image.Image:
    """An evaluation image as 8-bit RGB, decoded as training decodes it (`data/decode.py`: EXIF
    orientation applied, odd modes converted, PIL's decompression-bomb guard kept, a JPEG above it
    decoded at reduced size).

    An unusable file is a one-line EvalInputError naming it. It is not skipped: a protocol's
    scores are defined over its whole evaluation set, and a skipped image would shift every
    feature row against its label.
    """
    try:
        return load_rgb(path)
    except UnusableImage as exc:
        raise EvalInputError(
            f"{path}: unusable image ({exc}); replace the file or remove it from the data set"
        ) from exc
