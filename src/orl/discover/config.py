"""Settings of `orl discover` (stage 2, sec. 3.1 (i)-(iii)); defaults are the paper's/authors'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DiscoverConfig:
    # Box pool: OpenCV selective search (the authors), COCO instance boxes (Table 5d), or raw
    # proposals imported with `orl corr import-proposals` (folder in `proposal_file`).
    boxes: Literal["selective-search", "coco-gt", "file"] = "selective-search"
    proposal_file: str = ""
    ss_mode: Literal["fast", "quality"] = "fast"
    # Longest side selective search sees; 0 = full resolution. 1024 leaves COCO (<= 640 px)
    # untouched and keeps a stray 8000 px photo from taking minutes; boxes are mapped back.
    ss_max_side: int = 1024
    ss_seed: int = 0  # mixed with each image's relative path into the libc srand() seed
    proposal_workers: int = 0  # processes per rank for selective search; 0 = CPUs / ranks
    proposal_cache: str = ""  # folder for raw proposals; "" = CORR_DIR/cache/proposals

    # Filter (sec. 3.1 (ii), footnote 2), one greedy pass in proposal order.
    min_size: int = 96
    max_aspect: float = 3.0
    max_iou: float = 0.5
    max_boxes: int = 100

    # Image kNN (sec. 3.1 (i)): projector output of the centre crop.
    k: int = 10
    knn_resize: int = 256
    knn_crop: int = 224

    # RoI embeddings (sec. 3.1 (ii)): "warp" = crop + resize each box and run the backbone on it
    # (the authors); "roi-align" = one backbone pass per image and RoIAlign on the last map.
    roi_mode: Literal["warp", "roi-align"] = "warp"
    # warp mode: "pil" decodes and warps with PIL (the authors); "gpu" decodes on the device
    # (nvJPEG on CUDA) and warps all of an image's boxes there (antialiased bilinear)
    roi_backend: Literal["pil", "gpu"] = "pil"
    roi_size: int = 224
    roi_align_side: int = 640  # roi-align: the image's longer side for its single pass
    roi_align_output: int = 7
    roi_feature_dtype: Literal["float32", "float16"] = "float32"

    # Pairs (sec. 3.1 (iii)): global top max(1, int(ratio * B_q)) of S = F_q F_k^T.
    pair_ratio: float = 0.1

    batch_size: int = 64
    shard_size: int = 256  # images per shard file: the unit of work, resume and rank split
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError("k must be >= 1")
        if not 0.0 < self.pair_ratio <= 1.0:
            raise ValueError("pair_ratio must be in (0, 1]")
        if self.max_boxes < 1 or self.max_boxes > 32767:
            raise ValueError("max_boxes must be in [1, 32767]")
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError("shard_size and batch_size must be >= 1")
        if self.max_aspect < 1.0:
            raise ValueError("max_aspect must be >= 1")
        if self.boxes == "file" and not self.proposal_file:
            raise ValueError(
                "boxes=file needs proposal_file=DIR (from `orl corr import-proposals`)"
            )
