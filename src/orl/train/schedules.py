"""Per-step schedules, precomputed once and indexed by the global optimizer step (sec. 3.2)."""

from __future__ import annotations

import math

import numpy as np


def lr_schedule(
    peak_lr: float,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: float,
    warmup_ratio: float = 1e-4,
    cosine_per_epoch: bool = False,
) -> np.ndarray:
    """Cosine decay from `peak_lr` to 0 with a linear warm-up from `warmup_ratio * lr`.

    The warm-up multiplies the cosine value by a factor rising linearly per step from
    `warmup_ratio` to 1 over `warmup_epochs` (mmcv's "linear" warm-up, as the authors use). The
    cosine is evaluated per step by default; `cosine_per_epoch=True` evaluates it at epoch starts
    only, exactly like the authors' epoch-based mmcv runner.
    """
    steps = np.arange(total_steps, dtype=np.float64)
    progress = (
        np.floor(steps / steps_per_epoch) * steps_per_epoch if cosine_per_epoch else steps
    ) / max(total_steps, 1)
    lr = peak_lr * 0.5 * (1.0 + np.cos(math.pi * progress))
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    if warmup_steps > 0:
        k = np.minimum(steps / warmup_steps, 1.0)
        lr *= 1.0 - (1.0 - k) * (1.0 - warmup_ratio)
    return lr


def tau_schedule(tau: float, tau_end: float, total_steps: int) -> np.ndarray:
    """EMA decay tau_k = end - (end - tau) * (cos(pi k / K) + 1) / 2, k = optimizer step.

    BYOL: tau_0 = 0.99 rising to end = 1 at k = K. MoCo v2: end = tau, a constant momentum
    (exactly: (end - tau) is 0). One line for both, as DINO's teacher momentum schedule.
    """
    k = np.arange(total_steps, dtype=np.float64)
    return tau_end - (tau_end - tau) * (np.cos(math.pi * k / max(total_steps, 1)) + 1.0) / 2.0
