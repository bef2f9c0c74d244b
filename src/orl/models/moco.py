"""MoCo's queue of keys (He et al. 2020; MoCo v2, Chen et al. 2020), a baseline of Tables 1-4."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KeyQueue(nn.Module):
    """MoCo's "dictionary as a queue": the keys of the latest `size` images, oldest replaced first.

    `keys` (size x dim, L2-normalised; random unit vectors at the start, as in MoCo's code) and
    `ptr` (the slot the next key goes to) are buffers, so they travel with `.to(device)` and the
    state dict, and a resumed run continues with the exact queue.

    The slots of an enqueue are computed on the device as (ptr + i) mod size: no host
    synchronisation per step, and a size that is not a multiple of the batch simply wraps around
    inside one enqueue (the oldest keys are overwritten either way).
    """

    keys: torch.Tensor
    ptr: torch.Tensor

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError("a key queue needs a positive size and dimension")
        self.size = size
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write `keys` (n x dim, n <= size) over the n oldest entries; advance the pointer."""
        n = keys.shape[0]
        if n > self.size:
            raise ValueError(f"cannot enqueue {n} keys into a queue of {self.size}")
        slots = (self.ptr + torch.arange(n, device=self.keys.device)) % self.size
        self.keys.index_copy_(0, slots, keys.to(self.keys.dtype))
        self.ptr.copy_((self.ptr + n) % self.size)
