"""The gallery of top-ranked correspondence pairs, like Figures 3 and 5 of the paper (sec. 3.1
(iii)): `orl viz pairs` and the report draw it.

As in the paper, one pair per image pair: every (query, neighbour) row of the store is ranked by
its most similar RoI pair, the better of the two directions of an image pair is kept, and the
`count` best are drawn (query with its box | neighbour with its box | cosine similarity). Pairs of
two near-duplicate images (consecutive video frames, copies: perceptual hashes within
`data/near_duplicates.py: MAX_DISTANCE` bits) match trivially at cosine ~1; they are drawn only
after every pair of distinct photos, so the gallery shows correspondences between different
photos first. Boxes are
in the EXIF-rotated original frame and are rescaled onto each thumbnail from that frame. Images are
taken from a list of paths (position i = store image i), so any data set works.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from orl.artifacts import atomic_open
from orl.data.decode import UnusableImage, load_rgb, oriented_size
from orl.data.near_duplicates import MAX_DISTANCE, hamming, perceptual_hash
from orl.data.sources import resolve_sources
from orl.discover.store import FLAG_SKIPPED, CorrespondenceStore

COLOURS = ((230, 25, 75), (60, 180, 75))
GAP = 6
CAPTION_HEIGHT = 18


@dataclass(frozen=True)
class PairPick:
    """The best RoI pair of store row (q, j): boxes are xywh in original pixels."""

    query: int
    neighbour: int
    query_box: tuple[int, int, int, int]
    neighbour_box: tuple[int, int, int, int]
    similarity: float


NearDuplicate = Callable[[int, int], bool]  # (image i, image j) -> near-identical photos?


def near_duplicates(image_paths: Sequence[str], max_distance: int = MAX_DISTANCE) -> NearDuplicate:
    """Whether two images of the data set are near-duplicates by their perceptual hashes, which
    are computed on first use (an undecodable image is nobody's duplicate)."""
    hashes: dict[int, int | None] = {}

    def hash_of(i: int) -> int | None:
        if i not in hashes:
            try:
                hashes[i] = perceptual_hash(load_rgb(image_paths[i], max_side=128))
            except (UnusableImage, OSError):
                hashes[i] = None
        return hashes[i]

    def test(i: int, j: int) -> bool:
        a, b = hash_of(i), hash_of(j)
        return a is not None and b is not None and hamming(a, b) <= max_distance

    return test


def best_pairs(
    store: CorrespondenceStore, count: int, near_duplicate: NearDuplicate | None = None
) -> list[PairPick]:
    """The `count` most similar pairs, one per unordered image pair, skipped queries left out.

    Pairs without a stored similarity (imported stores: NaN) rank last, in store order. With
    `near_duplicate`, pairs of near-duplicate images come after all others (each group keeps its
    order), so they fill the gallery only when distinct pairs run out.
    """
    sims = np.asarray(store.array("pair_sims"), dtype=np.float32)
    offsets = np.asarray(store.array("pair_offsets"), dtype=np.int64)
    if not len(sims):
        return []
    # Every row owns at least one pair, so reduceat's segments are never empty.
    row_best = np.fmax.reduceat(sims, offsets[:-1])
    row_best = np.where(np.isnan(row_best), -np.inf, row_best)
    skipped = (np.asarray(store.array("flags")) & FLAG_SKIPPED).astype(bool)
    picks: list[PairPick] = []
    later: list[PairPick] = []  # near-duplicate image pairs
    seen: set[tuple[int, int]] = set()
    for row in np.argsort(-row_best, kind="stable").tolist():
        q, j = divmod(row, store.k)
        nb = int(store.neighbours(q)[j])
        key = (min(q, nb), max(q, nb))
        if skipped[q] or q == nb or key in seen:
            continue
        seen.add(key)
        row_sims = store.pair_sims(q, j)
        best = int(np.argmax(np.where(np.isnan(row_sims), -np.inf, row_sims)))
        pair = store.pairs(q, j)[best]
        qb = (int(pair[0]), int(pair[1]), int(pair[2]), int(pair[3]))
        nbb = (int(pair[4]), int(pair[5]), int(pair[6]), int(pair[7]))
        pick = PairPick(q, nb, qb, nbb, float(row_sims[best]))
        if near_duplicate is not None and near_duplicate(q, nb):
            if len(later) < count:
                later.append(pick)
            continue
        picks.append(pick)
        if len(picks) == count:
            break
    return (picks + later)[:count]


def _thumb(
    path: str, box: tuple[int, int, int, int], height: int, colour: tuple[int, int, int]
) -> Image.Image:
    """The image scaled to `height` with `box` outlined; a grey square when it cannot be read."""
    try:
        # Boxes live in the EXIF-rotated original frame; load_rgb may decode a JPEG smaller.
        width0, height0 = oriented_size(path)
        img = load_rgb(path, max_side=4 * height)
    except (UnusableImage, OSError):
        return Image.new("RGB", (height, height), (90, 90, 90))
    thumb = img.resize(
        (max(1, round(img.width * height / img.height)), height), Image.Resampling.BILINEAR
    )
    sx, sy = thumb.width / width0, thumb.height / height0
    x, y, w, h = box
    ImageDraw.Draw(thumb).rectangle(
        (x * sx, y * sy, (x + w) * sx, (y + h) * sy), outline=colour, width=3
    )
    return thumb


def pair_cell(image_paths: Sequence[str], pick: PairPick, height: int) -> Image.Image:
    """Query | neighbour side by side, boxes outlined, the similarity underneath."""
    left = _thumb(image_paths[pick.query], pick.query_box, height, COLOURS[0])
    right = _thumb(image_paths[pick.neighbour], pick.neighbour_box, height, COLOURS[1])
    cell = Image.new("RGB", (left.width + GAP + right.width, height + CAPTION_HEIGHT), "white")
    cell.paste(left, (0, 0))
    cell.paste(right, (left.width + GAP, 0))
    sim = "n/a" if np.isnan(pick.similarity) else f"{pick.similarity:.3f}"
    caption = f"#{pick.query} -> #{pick.neighbour}   cos {sim}"
    ImageDraw.Draw(cell).text((2, height + 3), caption, fill=(0, 0, 0))
    return cell


def pairs_gallery(
    image_paths: Sequence[str], picks: Sequence[PairPick], height: int = 140, columns: int = 2
) -> Image.Image:
    """The cells of `picks` in a grid, best first, row by row."""
    cells = [pair_cell(image_paths, p, height) for p in picks]
    cols = max(1, min(columns, len(cells)))
    rows = (len(cells) + cols - 1) // cols
    cw = max((c.width for c in cells), default=height)
    ch = height + CAPTION_HEIGHT
    grid = Image.new("RGB", (cols * (cw + 2 * GAP), max(1, rows) * (ch + GAP)), "white")
    for n, cell in enumerate(cells):
        grid.paste(cell, ((n % cols) * (cw + 2 * GAP), (n // cols) * (ch + GAP)))
    return grid


def cmd_pairs(args: argparse.Namespace) -> int:
    """`orl viz pairs`: the `--count` best pairs of a store as one PNG."""
    images = resolve_sources(args.data)
    store = CorrespondenceStore.open(args.corr_dir, images.fingerprint)
    paths = [images.path(i) for i in range(len(images))]
    picks = best_pairs(store, args.count, near_duplicates(paths))
    if not picks:
        raise ValueError(f"{store.path}: no pair to draw (every query image was skipped)")
    gallery = pairs_gallery(paths, picks, args.height, args.columns)
    out: Path = args.out
    with atomic_open(out) as handle:
        gallery.save(handle, format="PNG")
    print(f"wrote {out}")
    return 0


def add_pairs_parser(
    viz_subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `pairs` on the `viz` command group's sub-parsers."""
    p = viz_subparsers.add_parser("pairs", help="a gallery of discovered RoI pairs (paper Fig. 3)")
    p.add_argument("corr_dir", type=Path)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--count", type=int, default=12, help="pairs to draw, best first")
    p.add_argument("--columns", type=int, default=3)
    p.add_argument("--height", type=int, default=160, help="thumbnail height (pixels)")
    p.set_defaults(func=cmd_pairs)
    return p
