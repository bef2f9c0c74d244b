"""`roi_backend: gpu`: decode and warp RoIs on the device; the same store as the PIL warp up to
resampling noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from discover_helpers import draw_scene, store_arrays, tiny_config

from orl.augment_tensor import resize_crops
from orl.data.crops import crop_rect
from orl.discover.images import warp_crops
from orl.discover.pipeline import discover
from orl.discover.roi import embed_rois_warp, embed_rois_warp_tensor
from orl.models.byol import Encoder


def test_device_warp_matches_the_pil_warp() -> None:
    img = draw_scene(3, (150, 110))
    pixels = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    boxes = np.array([[0, 0, 150, 110], [10, 20, 60, 40], [100, 5, 50, 100], [3, 3, 7, 9]])
    torch.manual_seed(0)
    backbone = Encoder("resnet18", 32, 16).backbone.eval()
    frame = (150, 110)
    ref = embed_rois_warp(backbone, img, boxes, frame, 48, 3, torch.device("cpu"))
    got = embed_rois_warp_tensor(backbone, pixels, boxes, frame, 48, 3)
    assert got.shape == ref.shape == (4, 512)
    assert (got * ref).sum(1).min() > 0.999  # cosine of the L2-normalised features
    # the crops themselves: antialiased bilinear against PIL's, in 8-bit levels
    rects = [(0, crop_rect(tuple(b), frame, frame)) for b in boxes.tolist()]
    crops = resize_crops([pixels], rects, 48).round()
    pil = warp_crops(img, boxes, 48, frame)  # normalised: undo it
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    pil_levels = ((pil * std + mean) * 255).round()
    assert (crops - pil_levels).abs().mean() < 0.3 and (crops - pil_levels).abs().max() <= 2


def test_gpu_roi_backend_gives_the_same_boxes_and_nearly_the_same_pairs(
    baseline: Path, checkpoint: Path, photos: Path, tmp_path: Path
) -> None:
    cache = str(baseline / "cache" / "proposals")
    cfg = tiny_config(roi_backend="gpu", proposal_cache=cache)
    out = discover(cfg, checkpoint, [str(photos)], tmp_path / "gpu", resume=False)
    a, b = store_arrays(baseline), store_arrays(out)
    for name in ("boxes", "box_offsets", "neighbours", "flags"):
        assert np.array_equal(a[name], b[name]), name
    assert a["pair_index"].shape == b["pair_index"].shape  # as many pairs: they follow the boxes
    assert np.mean(a["pair_index"] == b["pair_index"]) > 0.9
