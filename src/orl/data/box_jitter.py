"""Spatial jitter of a box for the intra-RoI views (sec. 3.1 "Stage 3", footnote 3).

Up to `attempts` candidates: area' = U(0.5, 2) x w h; aspect r = exp(U(ln 1/2, ln 2)) (absolute,
not relative to the box); w' = round(sqrt(area' r)), h' = round(sqrt(area' / r)); centre shifted by
U(-0.5, 0.5) x w and U(-0.5, 0.5) x h. The first candidate that lies inside the image and has
IoU > 0.5 with the box is used; if none does, the box itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.ops import box_iou


@dataclass(frozen=True)
class JitterConfig:
    area_min: float = 0.5
    area_max: float = 2.0
    aspect_min: float = 0.5
    aspect_max: float = 2.0
    shift: float = 0.5
    min_iou: float = 0.5
    attempts: int = 200


def jitter_box(
    box: tuple[float, float, float, float], width: int, height: int, cfg: JitterConfig
) -> tuple[float, float, float, float]:
    """A jittered xywh copy of `box` inside a width x height image (torch's global RNG).

    All attempts are drawn at once and the first acceptable one is taken, which has the same
    distribution as the authors' sequential loop.
    """
    x, y, w, h = (float(v) for v in box)
    n = cfg.attempts
    area = torch.empty(n, dtype=torch.float64).uniform_(cfg.area_min, cfg.area_max) * (w * h)
    log_r = torch.empty(n, dtype=torch.float64).uniform_(
        math.log(cfg.aspect_min), math.log(cfg.aspect_max)
    )
    ratio = log_r.exp()
    new_w = (area * ratio).sqrt().round()
    new_h = (area / ratio).sqrt().round()
    cx = x + w / 2 + torch.empty(n, dtype=torch.float64).uniform_(-cfg.shift, cfg.shift) * w
    cy = y + h / 2 + torch.empty(n, dtype=torch.float64).uniform_(-cfg.shift, cfg.shift) * h
    x0, y0 = cx - new_w / 2, cy - new_h / 2
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + new_w <= width) & (y0 + new_h <= height)
    inside &= (new_w >= 1) & (new_h >= 1)
    candidates = torch.stack([x0, y0, x0 + new_w, y0 + new_h], dim=1)
    original = torch.tensor([[x, y, x + w, y + h]], dtype=torch.float64)
    ok = inside & (box_iou(original, candidates)[0] > cfg.min_iou)
    hits = ok.nonzero()
    if len(hits) == 0:
        return (x, y, w, h)
    k = int(hits[0, 0])
    return (float(x0[k]), float(y0[k]), float(new_w[k]), float(new_h[k]))
