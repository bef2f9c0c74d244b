"""RoI embeddings, sec. 3.1 (ii)-(iii): the stage-1 online backbone on each kept box.

Two modes. `warp` is the authors': crop each box from the original image, warp it to 224 x 224,
global-average-pool the backbone output, L2-normalise. `roi-align` (ours, faster) runs the
backbone once per image and pools each box from the last feature map with RoIAlign.
Note the asymmetry of the method: image kNN uses the projector, RoIs the backbone only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.ops import roi_align

from orl.augment import normalize_on_device
from orl.augment_tensor import resize_crops
from orl.data.crops import crop_rect
from orl.discover.images import to_tensor, warp_crops
from orl.models.backbone import stage_features


@torch.inference_mode()
def embed_rois_warp(
    backbone: nn.Module,
    img: Image.Image,
    boxes: np.ndarray,
    frame: tuple[int, int],
    size: int,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """(B, D) float32 L2-normalised backbone features of each warped box; one forward per box."""
    out = []
    for start in range(0, len(boxes), batch_size):
        crops = warp_crops(img, boxes[start : start + batch_size], size, frame).to(device)
        out.append(F.normalize(backbone(crops).float(), dim=1).cpu())
    return torch.cat(out).numpy()


@torch.inference_mode()
def embed_rois_warp_tensor(
    backbone: nn.Module,
    pixels: torch.Tensor,
    boxes: np.ndarray,
    frame: tuple[int, int],
    size: int,
    batch_size: int,
) -> np.ndarray:
    """`embed_rois_warp` on a decoded (3, H, W) uint8 image already on the device: the boxes are
    cut and warped there, `batch_size` at a time (antialiased bilinear, 8-bit levels as PIL's)."""
    shape = (int(pixels.shape[-1]), int(pixels.shape[-2]))
    rects = [(0, crop_rect((b[0], b[1], b[2], b[3]), frame, shape)) for b in boxes.tolist()]
    out = []
    for start in range(0, len(rects), batch_size):
        crops = resize_crops([pixels], rects[start : start + batch_size], size).round_()
        out.append(F.normalize(backbone(normalize_on_device(crops)).float(), dim=1).cpu())
    return torch.cat(out).numpy()


@torch.inference_mode()
def embed_rois_align(
    backbone: nn.Module,
    img: Image.Image,
    boxes: np.ndarray,
    frame: tuple[int, int],
    side: int,
    output_size: int,
    device: torch.device,
) -> np.ndarray:
    """(B, D) float32 L2-normalised RoIAlign features from one backbone pass over the image.

    The image is resized so that its longer side is `side`; each box is pooled from the layer4
    map (output_size x output_size bins, 2 samples per bin, aligned corners) and averaged.
    """
    w, h = img.size
    scale = side / max(w, h)
    resized = img.resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR
    )
    x = to_tensor(resized).unsqueeze(0).to(device)
    fmap = stage_features(backbone, x)["layer4"].float()
    xyxy = torch.as_tensor(boxes, dtype=torch.float32).clone()
    xyxy[:, 2:] += xyxy[:, :2]
    # boxes are in `frame` pixels; the map covers `resized`: one scale per axis.
    xyxy[:, 0::2] *= fmap.shape[-1] / frame[0]
    xyxy[:, 1::2] *= fmap.shape[-2] / frame[1]
    rois = torch.cat([torch.zeros(len(xyxy), 1), xyxy], dim=1).to(device)
    pooled = roi_align(fmap, rois, output_size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return F.normalize(pooled.mean(dim=(2, 3)), dim=1).cpu().numpy()
