"""Detectron2's names for a torchvision ResNet (sec. 4.1, Table 4: the detection transfer), both
ways, and a reader for Detectron2 weight pickles that runs no code.

Detectron2 keeps weights as `{"model": {name: numpy array}, ...}` pickles. A pickle can name any
Python callable, which unpickling then calls; so `read_detectron2_pickle` unpickles through
`SafeUnpickler`, which resolves only numpy's array reconstruction, dtypes and `OrderedDict` and
refuses every other global before anything runs. Arrays start empty and take their bytes from
the file, so a pickle cannot make the reader allocate more than its own size; every weight must
be a numeric array.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Everything a Detectron2 weight pickle needs: numpy arrays (numpy 1 and 2 module names; pickle
# protocols 2-4 rebuild them with `_reconstruct`, protocol 5 with `_frombuffer`), their dtypes and
# 0-d scalars, ordered dicts, and protocol 2's bytes (`_codecs.encode(text, "latin1")`). Plain
# dicts, lists, strings and numbers need none.
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),
    }
)
# Prefix of the backbone inside a trained Detectron2 detector (R-CNN with FPN).
DETECTOR_PREFIX = "backbone.bottom_up."


class UnsafePickle(pickle.UnpicklingError):
    """The pickle names a global outside `ALLOWED_GLOBALS`."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and builtin containers only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickle(f"refused global {module}.{name}")
        checked = {"_reconstruct": _empty_array_start, "encode": _latin1_bytes}
        return checked.get(name) or super().find_class(module, name)


def _empty_array_start(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct` as numpy's own pickles call it: an empty array that the state
    (shape and bytes, bounded by the file's size) then fills. Any other shape would allocate
    whatever the file asks for, so it is refused."""
    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise UnsafePickle(f"refused array reconstruction with shape {shape!r}")
    return np.ndarray((0,), dtype=np.dtype(dtype))


def _latin1_bytes(text: Any, encoding: Any) -> bytes:
    """`_codecs.encode` as pickle protocol 2 calls it for bytes; no other codec runs."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickle(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def detectron2_key(key: str) -> str:
    """Rename one torchvision ResNet key the way Detectron2's conversion script does."""
    if not key.startswith("layer"):
        key = "stem." + key
    key = re.sub(r"layer(\d)", lambda m: f"res{int(m.group(1)) + 1}", key)
    key = re.sub(r"bn(\d)", r"conv\1.norm", key)
    return key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


def torchvision_key(key: str) -> str | None:
    """The inverse of `detectron2_key`, also for a detector's backbone (`backbone.bottom_up.`);
    None for a key outside the ResNet (FPN, RPN, box and mask heads)."""
    key = key.removeprefix(DETECTOR_PREFIX)
    if key.startswith("stem."):
        return key.removeprefix("stem.").replace("conv1.norm", "bn1")
    if not re.match(r"res[2-5]\.", key):
        return None
    key = re.sub(r"^res(\d)", lambda m: f"layer{int(m.group(1)) - 1}", key)
    key = key.replace("shortcut.norm", "downsample.1").replace("shortcut", "downsample.0")
    return re.sub(r"conv(\d)\.norm", r"bn\1", key)


def read_detectron2_pickle(path: Path) -> dict[str, torch.Tensor]:
    """The ResNet of a Detectron2 weight pickle as a torchvision state dict (without `fc`).

    Raises `UnsafePickle` for a pickle that names anything but numpy arrays, and ValueError for one
    that is not a Detectron2 weight file (no `model` mapping of arrays).
    """
    try:
        data = SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, OSError):
        raise
    except Exception as exc:  # a damaged stream fails in many ways; none is recoverable here
        raise pickle.UnpicklingError(f"damaged pickle: {type(exc).__name__}") from exc
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        blobs = isinstance(data, dict) and "blobs" in data
        hint = " (Caffe2 `blobs`: convert it with Detectron2 first)" if blobs else ""
        raise ValueError(f"no `model` mapping of weights{hint}")
    state: dict[str, torch.Tensor] = {}
    for name, value in model.items():
        key = torchvision_key(str(name))
        if key is None:
            continue
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
            raise ValueError(f"`model.{name}` is not a numeric array")
        state[key] = torch.from_numpy(np.array(value))
    for key in [k for k in state if k.endswith(".running_var")]:
        tracked = key.removesuffix("running_var") + "num_batches_tracked"
        state.setdefault(tracked, torch.tensor(0))  # Detectron2's own files leave it out
    return state
