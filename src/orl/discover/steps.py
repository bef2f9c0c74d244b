"""The four sharded steps of stage 2 (sec. 3.1 (i)-(iii)); each writes one file per shard.

Every step loops over this rank's shards, skips those already on disk (resume) and shows a tqdm
bar on rank 0. `pipeline.py` runs them in order with a barrier in between and merges the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from orl.artifacts import atomic_save_npy
from orl.config import settings_key
from orl.data.decode import UnusableImage, oriented_size
from orl.data.encoded import decode_images, load_encoded
from orl.data.sources import ImageList
from orl.discover.config import DiscoverConfig
from orl.discover.filter import clip_to_image, filter_proposals
from orl.discover.images import centre_crop
from orl.discover.knn import knn_search
from orl.discover.pairs import top_pairs
from orl.discover.proposals import SearchTask, image_seed, search_many
from orl.discover.roi import embed_rois_align, embed_rois_warp, embed_rois_warp_tensor
from orl.discover.shards import Shards, load_npz, save_npz
from orl.discover.store import FLAG_FALLBACK, FLAG_SKIPPED, offsets_of
from orl.models.byol import Encoder

RawSource = Callable[[int], list[np.ndarray]]  # shard -> raw proposals per image


@dataclass(frozen=True)
class Context:
    """What every step needs: settings, data, where shard files go, and who this rank is."""

    cfg: DiscoverConfig
    images: ImageList
    shards: Shards
    dirs: dict[str, Path]  # step name -> folder of its shard files (keyed by its settings)
    rank: int
    world: int
    device: torch.device

    @property
    def show(self) -> bool:
        return self.rank == 0

    def todo(self, step: str, suffix: str = ".npz") -> list[int]:
        """This rank's shards of `step` that have no file yet."""
        mine = self.shards.of_rank(self.rank, self.world)
        return [s for s in mine if not self.shard_file(step, s, suffix).exists()]

    def shard_file(self, step: str, s: int, suffix: str = ".npz") -> Path:
        return self.dirs[step] / f"shard_{s:06d}{suffix}"

    def bar(self, shards: list[int], desc: str) -> tqdm:  # type: ignore[type-arg]
        total = sum(len(self.shards.range(s)) for s in shards)
        return tqdm(total=total, desc=desc, unit="img", disable=not self.show, dynamic_ncols=True)


def proposal_file(ctx: Context, s: int) -> Path:
    """Raw proposals are keyed by the images' identity, not their position: reusable elsewhere."""
    ids = [(ctx.images.relpath(i), int(ctx.images.sizes[i])) for i in ctx.shards.range(s)]
    return ctx.dirs["proposals"] / f"{settings_key(ids, length=16)}.npz"


def proposals_step(ctx: Context, workers: int) -> int:
    """Selective search on this rank's shards, one file per shard; returns images searched."""
    todo = [
        s for s in ctx.shards.of_rank(ctx.rank, ctx.world) if not proposal_file(ctx, s).exists()
    ]
    tasks = [
        SearchTask(
            ctx.images.path(i),
            image_seed(ctx.images.relpath(i), ctx.cfg.ss_seed),
            ctx.cfg.ss_mode,
            ctx.cfg.ss_max_side,
            ctx.images.offset(i),
            int(ctx.images.sizes[i]),
        )
        for s in todo
        for i in ctx.shards.range(s)
    ]
    results = search_many(tasks, workers)
    with ctx.bar(todo, "proposals") as bar:
        for s in todo:
            boxes = []
            for _ in ctx.shards.range(s):
                found = next(results)
                boxes.append(np.zeros((0, 4), np.int32) if found is None else found)
                bar.update(1)
            flat = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int32)
            save_npz(
                {"boxes": flat, "offsets": offsets_of([len(b) for b in boxes])},
                proposal_file(ctx, s),
            )
    return len(tasks)


def cached_proposals(ctx: Context) -> RawSource:
    def read(s: int) -> list[np.ndarray]:
        z = load_npz(proposal_file(ctx, s))
        off = z["offsets"]
        return [z["boxes"][off[j] : off[j + 1]] for j in range(len(off) - 1)]

    return read


def _decode(images: ImageList, i: int) -> tuple[object | None, tuple[int, int]]:
    """(image or None when undecodable, original size; (1, 1) when even the header is bad)."""
    try:
        decoded = images.decode(i)
        return decoded.image, decoded.frame
    except (UnusableImage, OSError, SyntaxError, ValueError):
        try:
            return None, oriented_size(images.source(i))
        except Exception:  # any header failure: the image is skipped either way
            return None, (1, 1)


def _batches(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def image_embed_step(ctx: Context, encoder: Encoder) -> None:
    """Projector embeddings of each image's centre crop, L2-normalised (sec. 3.1 (i))."""
    todo = ctx.todo("embed")
    with ctx.bar(todo, "image embeddings") as bar, torch.inference_mode():
        for s in todo:
            ids = list(ctx.shards.range(s))
            emb = np.zeros((len(ids), encoder.proj_dim), np.float32)
            usable = np.zeros(len(ids), bool)
            frames = np.ones((len(ids), 2), np.int32)
            for batch in _batches(list(range(len(ids))), ctx.cfg.batch_size):
                crops, rows = [], []
                for j in batch:
                    img, frames[j] = _decode(ctx.images, ids[j])
                    if img is not None:
                        crops.append(centre_crop(img, ctx.cfg.knn_resize, ctx.cfg.knn_crop))  # type: ignore[arg-type]
                        rows.append(j)
                    bar.update(1)
                if crops:
                    z = encoder(torch.stack(crops).to(ctx.device)).float()
                    emb[rows] = F.normalize(z, dim=1).cpu().numpy()
                    usable[rows] = True
            save_npz({"emb": emb, "usable": usable, "frames": frames}, ctx.shard_file("embed", s))


def load_image_embeddings(ctx: Context) -> dict[str, np.ndarray]:
    parts = [load_npz(ctx.shard_file("embed", s)) for s in range(len(ctx.shards))]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("emb", "usable", "frames")}


def knn_step(ctx: Context, embedded: dict[str, np.ndarray]) -> None:
    """K nearest images of each image in this rank's shards; one (M, N) block per shard."""
    bank = torch.from_numpy(embedded["emb"]).to(ctx.device)
    excluded = torch.from_numpy(~embedded["usable"]).to(ctx.device)
    todo = ctx.todo("knn")
    with ctx.bar(todo, "image kNN") as bar:
        for s in todo:
            ids = torch.tensor(list(ctx.shards.range(s)), device=ctx.device)
            nb, sims = knn_search(bank[ids], ids, bank, ctx.cfg.k, excluded)
            save_npz({"neighbours": nb.astype(np.int32), "sims": sims}, ctx.shard_file("knn", s))
            bar.update(len(ids))


def roi_step(
    ctx: Context, encoder: Encoder, raw: RawSource, embedded: dict[str, np.ndarray]
) -> None:
    """Filter each image's proposals and embed its kept boxes once (sec. 3.1 (ii)).

    Proposals are clipped to the image first. Undecodable images get one whole-image box and a
    zero feature (flag `skipped`); images with no proposal inside get a whole-image box and those
    whose proposals all fail the filter keep the first one (flag `fallback`, the authors' rule).
    """
    cfg = ctx.cfg
    todo = ctx.todo("roi")
    with ctx.bar(todo, "RoI embeddings") as bar:
        for s in todo:
            ids = list(ctx.shards.range(s))
            proposals = raw(s)
            boxes, flags, feats = [], np.zeros(len(ids), np.uint8), []
            for chunk in _batches(list(range(len(ids))), cfg.batch_size):
                pixels = _roi_images(ctx, [ids[j] for j in chunk], embedded["usable"])
                for j, img in zip(chunk, pixels, strict=True):
                    frame = (int(embedded["frames"][ids[j]][0]), int(embedded["frames"][ids[j]][1]))
                    kept, flags[j] = _kept_boxes(cfg, proposals[j], frame, img is not None)
                    boxes.append(kept)
                    feats.append(None if img is None else _embed(ctx, encoder, img, kept, frame))
                    bar.update(1)
            full = [np.zeros((1, encoder.feat_dim), np.float32) if f is None else f for f in feats]
            feat_arr = np.concatenate(full).astype(cfg.roi_feature_dtype)
            # features first, the npz (the shard's "done" marker) last
            atomic_save_npy(feat_arr, ctx.shard_file("roi", s, ".feats.npy"))
            save_npz(
                {
                    "boxes": np.concatenate(boxes),
                    "offsets": offsets_of([len(b) for b in boxes]),
                    "flags": flags,
                },
                ctx.shard_file("roi", s),
            )


def _roi_images(
    ctx: Context, ids: list[int], usable: np.ndarray
) -> list[Image.Image | torch.Tensor | None]:
    """The images of `ids` (None where unusable): PIL images, or with `roi_backend: gpu` in warp
    mode (3, H, W) uint8 tensors decoded on the device in one batch."""
    if ctx.cfg.roi_backend == "pil" or ctx.cfg.roi_mode != "warp":
        return [ctx.images.decode(i).image if usable[i] else None for i in ids]
    encoded = [load_encoded(ctx.images, i, None) for i in ids if usable[i]]
    decoded = iter(decode_images(encoded, ctx.device, []) if encoded else [])
    return [next(decoded) if usable[i] else None for i in ids]


def _kept_boxes(
    cfg: DiscoverConfig, proposals: np.ndarray, frame: tuple[int, int], usable: bool
) -> tuple[np.ndarray, int]:
    """An image's filtered boxes and flag (see `roi_step`)."""
    whole = np.array([[0, 0, frame[0], frame[1]]], np.int32)
    candidates = clip_to_image(proposals, frame)
    if not usable:
        return whole, FLAG_SKIPPED
    if len(candidates) == 0:
        return whole, FLAG_FALLBACK
    kept, fell_back = filter_proposals(
        candidates, cfg.min_size, cfg.max_aspect, cfg.max_iou, cfg.max_boxes
    )
    return kept, FLAG_FALLBACK if fell_back else 0


def _embed(
    ctx: Context,
    encoder: Encoder,
    img: Image.Image | torch.Tensor,
    kept: np.ndarray,
    frame: tuple[int, int],
) -> np.ndarray:
    cfg, backbone = ctx.cfg, encoder.backbone
    if isinstance(img, torch.Tensor):
        return embed_rois_warp_tensor(backbone, img, kept, frame, cfg.roi_size, cfg.batch_size)
    if cfg.roi_mode == "warp":
        return embed_rois_warp(backbone, img, kept, frame, cfg.roi_size, cfg.batch_size, ctx.device)
    return embed_rois_align(
        backbone, img, kept, frame, cfg.roi_align_side, cfg.roi_align_output, ctx.device
    )


@dataclass(frozen=True)
class RoiBank:
    """Every image's kept boxes, flags and (memory-mapped) features, by data-set position."""

    boxes: np.ndarray
    box_offsets: np.ndarray
    flags: np.ndarray
    feats: list[np.ndarray]  # per shard, memory-mapped
    feat_start: np.ndarray  # per image: (shard, first row in that shard's features)

    def features(self, i: int) -> np.ndarray:
        s, start = self.feat_start[i]
        n = self.box_offsets[i + 1] - self.box_offsets[i]
        return np.asarray(self.feats[s][start : start + n], dtype=np.float32)

    def count(self, i: int) -> int:
        return int(self.box_offsets[i + 1] - self.box_offsets[i])


def load_roi_bank(ctx: Context) -> RoiBank:
    boxes, counts, flags, feats, starts = [], [], [], [], []
    for s in range(len(ctx.shards)):
        z = load_npz(ctx.shard_file("roi", s))
        boxes.append(z["boxes"])
        c = np.diff(z["offsets"])
        counts.append(c)
        flags.append(z["flags"])
        feats.append(np.load(ctx.shard_file("roi", s, ".feats.npy"), mmap_mode="r"))
        starts.append(np.stack([np.full(len(c), s), z["offsets"][:-1]], axis=1))
    return RoiBank(
        boxes=np.concatenate(boxes),
        box_offsets=offsets_of(np.concatenate(counts)),
        flags=np.concatenate(flags),
        feats=feats,
        feat_start=np.concatenate(starts).astype(np.int64),
    )


def load_neighbours(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    parts = [load_npz(ctx.shard_file("knn", s)) for s in range(len(ctx.shards))]
    return np.concatenate([p["neighbours"] for p in parts]), np.concatenate(
        [p["sims"] for p in parts]
    )


def pairs_step(ctx: Context, bank: RoiBank, neighbours: np.ndarray) -> None:
    """Top pairs of every (query, neighbour) in this rank's shards (sec. 3.1 (iii)).

    Each image's features were computed once in `roi_step` and are read here for every query
    that has it as a neighbour: the authors re-embed them per query (about K + 1 times).
    """
    todo = ctx.todo("pairs")
    with ctx.bar(todo, "RoI pairs") as bar:
        for s in todo:
            index, sims, counts = [], [], []
            for q in ctx.shards.range(s):
                fq = bank.features(q)
                for nb in neighbours[q].tolist():
                    idx, sim = top_pairs(fq, bank.features(nb), ctx.cfg.pair_ratio)
                    index.append(idx)
                    sims.append(sim)
                    counts.append(len(idx))
                bar.update(1)
            save_npz(
                {
                    "index": np.concatenate(index),
                    "sims": np.concatenate(sims),
                    "counts": np.array(counts),
                },
                ctx.shard_file("pairs", s),
            )
