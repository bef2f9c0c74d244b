"""`orl discover`: stage 2 end to end (sec. 3.1 (i)-(iii)), sharded, resumable, then one store.

Layout of CORR_DIR:
    cache/proposals/<settings>/<images>.npz   raw selective-search proposals (reusable)
    work/<step>-<settings>/shard_NNNNNN.npz   per-shard results of each later step
    *.npy + meta.json                         the store (store.py), written last by rank 0
    timings.json                              seconds per step on rank 0 (not part of the store)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orl.artifacts import atomic_write_bytes
from orl.checkpoint import CheckpointError
from orl.config import settings_key, to_dict
from orl.data.sources import ImageList, resolve_sources
from orl.discover.config import DiscoverConfig
from orl.discover.proposals import coco_gt_boxes, default_workers, read_proposal_file
from orl.discover.shards import Shards, load_npz
from orl.discover.steps import (
    Context,
    RawSource,
    RoiBank,
    cached_proposals,
    image_embed_step,
    knn_step,
    load_image_embeddings,
    load_neighbours,
    load_roi_bank,
    pairs_step,
    proposals_step,
    roi_step,
)
from orl.discover.store import FLAG_FALLBACK, FLAG_SKIPPED, write_store_arrays
from orl.distributed import barrier, init_distributed
from orl.models.byol import Encoder
from orl.models.pretrained import load_pretrained


class DiscoverError(ValueError):
    """A user-input problem with `orl discover`; one line naming the path and the fix."""


def run_discover(
    cfg: DiscoverConfig, checkpoint: Path, data: Sequence[str], out: Path, resume: bool
) -> Path:
    """Run stage 2 on every rank torchrun started (or in this one process); returns `out`."""
    dist = init_distributed(cfg.device)
    return discover(cfg, checkpoint, data, out, resume, dist.rank, dist.world_size, dist.device)


def _step_dirs(cfg: DiscoverConfig, images: ImageList, out: Path, ckpt_sha: str) -> dict[str, Path]:
    c = to_dict(cfg)
    proposal_keys = [c[k] for k in ("ss_mode", "ss_max_side", "ss_seed")]
    cache = Path(cfg.proposal_cache) if cfg.proposal_cache else out / "cache" / "proposals"
    base = [images.fingerprint, cfg.shard_size]
    embed = settings_key(base, ckpt_sha, cfg.knn_resize, cfg.knn_crop, length=16)
    boxes = [cfg.boxes, cfg.proposal_file, proposal_keys, cfg.min_size, cfg.max_aspect]
    boxes += [cfg.max_iou, cfg.max_boxes]
    roi_keys = [c[k] for k in ("roi_mode", "roi_size", "roi_align_side", "roi_align_output")]
    if cfg.roi_backend != "pil":  # keeps the keys of stores made before the setting existed
        roi_keys.append(cfg.roi_backend)
    roi = settings_key(base, ckpt_sha, embed, boxes, roi_keys, cfg.roi_feature_dtype, length=16)
    knn = settings_key(embed, cfg.k, length=16)
    return {
        "proposals": cache / f"ss-{settings_key(proposal_keys, length=16)}",
        "embed": out / "work" / f"embed-{embed}",
        "knn": out / "work" / f"knn-{knn}",
        "roi": out / "work" / f"roi-{roi}",
        "pairs": out / "work" / f"pairs-{settings_key(roi, knn, cfg.pair_ratio, length=16)}",
    }


def _raw_source(ctx: Context, timings: dict[str, float]) -> RawSource:
    if ctx.cfg.boxes == "selective-search":
        t0 = time.perf_counter()
        workers = ctx.cfg.proposal_workers or default_workers(ctx.world)
        timings["proposal_images"] = proposals_step(ctx, workers)
        timings["proposals_s"] = time.perf_counter() - t0
        return cached_proposals(ctx)
    if ctx.cfg.boxes == "coco-gt":
        every = coco_gt_boxes(ctx.images)
    else:
        every = read_proposal_file(Path(ctx.cfg.proposal_file), ctx.images)
    return lambda s: [every[i] for i in ctx.shards.range(s)]


@contextmanager
def _step_timer(timings: dict[str, float], name: str) -> Iterator[None]:
    """`timings[name]`: seconds of a step, up to when every rank has finished it."""
    t0 = time.perf_counter()
    yield
    barrier()
    timings[name] = time.perf_counter() - t0


def _steps(
    ctx: Context, encoder: Encoder, raw: RawSource, source: str, timings: dict[str, float]
) -> tuple[RoiBank, np.ndarray]:
    """Image embeddings, image kNN (sec. 3.1 (i)), RoI embeddings of the filtered proposals (ii)
    and the top-ranked RoI pairs (iii) on this rank's shards; returns the RoI bank and the
    neighbours of every image."""
    with _step_timer(timings, "image_embed_s"):
        image_embed_step(ctx, encoder)
    with _step_timer(timings, "knn_s"):
        embedded = load_image_embeddings(ctx)
        if embedded["usable"].sum() < ctx.cfg.k + 1:
            raise DiscoverError(
                f"{source}: only {int(embedded['usable'].sum())} decodable images; "
                f"k={ctx.cfg.k} needs {ctx.cfg.k + 1}; lower it with --set k=..."
            )
        knn_step(ctx, embedded)
    with _step_timer(timings, "roi_embed_s"):
        roi_step(ctx, encoder, raw, embedded)
    with _step_timer(timings, "pairs_s"):
        bank = load_roi_bank(ctx)
        neighbours, _ = load_neighbours(ctx)
        pairs_step(ctx, bank, neighbours)
    return bank, neighbours


def discover(
    cfg: DiscoverConfig,
    checkpoint: Path,
    data: Sequence[str],
    out: Path,
    resume: bool,
    rank: int = 0,
    world: int = 1,
    device: torch.device | None = None,
) -> Path:
    """The four steps on this rank's shards with barriers between them; rank 0 merges."""
    out = Path(out)
    if not resume and out.exists() and any(out.iterdir()):
        raise DiscoverError(
            f"{out}: not empty; pass --resume to continue it, or choose a new --out"
        )
    barrier()  # every rank checked `out` before anyone writes to it
    images = resolve_sources(data)
    try:
        pretrained = load_pretrained(Path(checkpoint))
    except CheckpointError as exc:
        raise DiscoverError(str(exc)) from exc
    device = device or torch.device("cpu")
    encoder = pretrained.build_encoder().to(device)
    if len(images) < cfg.k + 1:
        raise DiscoverError(
            f"{data[0]}: {len(images)} images, but k={cfg.k} neighbours need at least "
            f"{cfg.k + 1}; lower it with --set k=..."
        )
    dirs = _step_dirs(cfg, images, out, pretrained.sha256)
    ctx = Context(cfg, images, Shards(len(images), cfg.shard_size), dirs, rank, world, device)
    timings: dict[str, float] = {"images": float(len(images))}

    raw = _raw_source(ctx, timings)
    barrier()
    bank, neighbours = _steps(ctx, encoder, raw, data[0], timings)
    if rank == 0:
        t0 = time.perf_counter()
        meta = {
            "fingerprint": images.fingerprint,
            "checkpoint_sha256": pretrained.sha256,
            "checkpoint_arch": pretrained.arch,
            "sources": list(images.sources),
            "settings": to_dict(cfg),
        }
        merge(ctx, bank, neighbours, meta, out)
        timings["merge_s"] = time.perf_counter() - t0
        atomic_write_bytes(json.dumps(timings, indent=1).encode(), out / "timings.json")
    barrier()
    return out


def forward_counts(counts: np.ndarray, neighbours: np.ndarray, roi_mode: str) -> dict[str, int]:
    """RoI backbone passes: ours (each image's boxes once; roi-align: one pass per image) against
    the authors' (for every query, its own boxes and all of each neighbour's boxes again)."""
    ours = int(counts.sum()) if roi_mode == "warp" else len(counts)
    authors = int(counts.sum() + counts[neighbours].sum())
    return {"roi_forwards_ours": ours, "roi_forwards_authors": authors}


def merge(
    ctx: Context, bank: RoiBank, neighbours: np.ndarray, meta: dict[str, Any], out: Path
) -> None:
    """Concatenate every shard into the store; statistics go into meta["counts"]."""
    parts = [load_npz(ctx.shard_file("pairs", s)) for s in range(len(ctx.shards))]
    pair_counts = np.concatenate([p["counts"] for p in parts])
    counts = np.diff(bank.box_offsets)
    skipped = np.flatnonzero(bank.flags & FLAG_SKIPPED)
    meta["counts"] = {
        "images": len(counts),
        "skipped": len(skipped),
        "fallback": int(np.count_nonzero(bank.flags & FLAG_FALLBACK)),
        "boxes": int(counts.sum()),
        "pairs": int(pair_counts.sum()),
        **forward_counts(counts, neighbours, ctx.cfg.roi_mode),
    }
    meta["skipped_images"] = [ctx.images.relpath(int(i)) for i in skipped[:1000]]
    write_store_arrays(
        out,
        boxes=bank.boxes,
        box_offsets=bank.box_offsets,
        neighbours=neighbours,
        pair_index=np.concatenate([p["index"] for p in parts]),
        pair_offsets=np.concatenate([[0], np.cumsum(pair_counts)]).astype(np.int64),
        pair_sims=np.concatenate([p["sims"] for p in parts]),
        flags=bank.flags,
        meta=meta,
    )
