"""What every evaluation command reads: the network to evaluate, the folders it needs and their
images.

`--checkpoint` takes an `orl pretrain` checkpoint, a torchvision ResNet state-dict file (such as
`orl export --format torchvision` writes), or `random:ARCH` for the random-init baseline of
Tables 1-4 ("Random" rows).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from PIL import Image

from orl.checkpoint import CheckpointError, file_sha256, safe_torch_load
from orl.data.decode import UnusableImage, load_rgb
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
    """Resolve `--checkpoint`: `random:ARCH`, an orl checkpoint, or a torchvision state dict."""
    if spec.startswith("random:"):
        return random_weights(spec.split(":", 1)[1], seed)
    path = Path(spec)
    if not path.is_file():
        raise EvalInputError(
            f"{path}: no such checkpoint file; pass an orl checkpoint, a torchvision state dict "
            "or random:ARCH"
        )
    try:
        obj = safe_torch_load(path)
    except CheckpointError as exc:
        raise EvalInputError(str(exc)) from exc
    if isinstance(obj, dict) and obj.get("format") == "orl-checkpoint":
        try:
            return load_pretrained(path)
        except CheckpointError as exc:
            raise EvalInputError(str(exc)) from exc
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = {k: v for k, v in obj.items() if not k.startswith("fc.")}
        arch = _infer_arch(state)
        if arch is not None:
            sha256 = file_sha256(path)
            return Pretrained(arch, state, f"torchvision:{sha256}", sha256=sha256)
    raise EvalInputError(
        f"{path}: neither an orl checkpoint nor a torchvision ResNet state dict; export one with "
        "`orl export --format torchvision`"
    )


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
