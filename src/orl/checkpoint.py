"""Atomic checkpoint files and safe loading (`weights_only=True`)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch

from orl.artifacts import atomic_open

FORMAT = "orl-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, torn or not ours; the message is one line naming the file."""


def atomic_save(obj: Any, path: Path) -> None:
    """`torch.save` through a temporary file and a rename (see orl.artifacts)."""
    with atomic_open(path) as f:
        torch.save(obj, f)


def safe_torch_load(path: Path) -> Any:
    """`torch.load(weights_only=True)` of a user-given file, or a one-line CheckpointError.

    A file that holds anything but tensors and plain containers is refused before any of it runs:
    a crafted pickle can name any Python callable (e.g. `os.system`) to be called while loading.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message cannot tell a damaged file from a crafted one reliably; both are refused.
        raise CheckpointError(
            f"{path}: refused: unreadable as tensors and plain data (a damaged file, or Python "
            "objects whose loading could run code); use checkpoints written by orl or torchvision"
        ) from exc
    except Exception as exc:  # torn zip, truncated file: all unrecoverable here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({first}); delete it to restart, or resume from an "
            "earlier file in the same folder"
        ) from exc


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load one of our checkpoints with `weights_only=True`, or raise a one-line CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here (train first, or check the path)")
    obj = safe_torch_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an orl checkpoint (no '{FORMAT}' marker)")
    return obj


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex digest of a file, for stamping artifacts with the checkpoint they came from."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
