"""A gallery of discovered RoI pairs, like Figure 3 of the paper (sec. 3.1 (iii)).

Each cell: the query image with its box, its neighbour with the paired box, and the cosine
similarity. Pictures are drawn with PIL only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from orl.data.decode import UnusableImage, load_rgb
from orl.data.sources import ImageList
from orl.discover.store import CorrespondenceStore

COLOURS = ((230, 25, 75), (60, 180, 75))


def pick_queries(store: CorrespondenceStore, count: int) -> list[int]:
    """`count` evenly spaced images that were not skipped (deterministic)."""
    usable = [i for i in range(store.num_images) if not store.is_skipped(i)]
    if not usable:
        return []
    picks = np.linspace(0, len(usable) - 1, num=min(count, len(usable))).round().astype(int)
    return [usable[p] for p in dict.fromkeys(picks.tolist())]


def _thumb(path: str, box: np.ndarray, height: int, colour: tuple[int, int, int]) -> Image.Image:
    """The image scaled to `height` with `box` (xywh, original pixels) outlined."""
    try:
        img = load_rgb(path)
    except UnusableImage:
        img = Image.new("RGB", (max(1, int(box[2])), max(1, int(box[3]))), (40, 40, 40))
    scale = height / img.height
    thumb = img.resize((max(1, round(img.width * scale)), height), Image.Resampling.BILINEAR)
    x, y, w, h = (float(v) * scale for v in box)
    ImageDraw.Draw(thumb).rectangle((x, y, x + w, y + h), outline=colour, width=3)
    return thumb


def pair_cell(
    store: CorrespondenceStore, images: ImageList, q: int, j: int, height: int
) -> Image.Image:
    """Query | neighbour with the most similar pair of neighbour j, and its similarity."""
    pair = store.pairs(q, j)[0]
    sim = float(store.pair_sims(q, j)[0])
    nb = int(store.neighbours(q)[j])
    left = _thumb(images.path(q), pair[:4], height, COLOURS[0])
    right = _thumb(images.path(nb), pair[4:], height, COLOURS[1])
    cell = Image.new("RGB", (left.width + right.width + 6, height + 18), (255, 255, 255))
    cell.paste(left, (0, 0))
    cell.paste(right, (left.width + 6, 0))
    caption = f"#{q} -> #{nb} (k={j + 1})  cos {sim:.3f}"
    ImageDraw.Draw(cell).text((2, height + 3), caption, fill=(0, 0, 0))
    return cell


def draw_pairs(
    store: CorrespondenceStore,
    images: ImageList,
    out: Path,
    count: int = 12,
    columns: int = 3,
    height: int = 160,
    neighbour: int = 0,
) -> Path:
    """Save a grid of `count` pair cells (one per query) to `out`; returns `out`."""
    cells = [pair_cell(store, images, q, neighbour, height) for q in pick_queries(store, count)]
    if not cells:
        raise ValueError(f"{store.path}: no decodable image to draw")
    cols = max(1, min(columns, len(cells)))
    rows = (len(cells) + cols - 1) // cols
    cw = max(c.width for c in cells)
    ch = max(c.height for c in cells)
    grid = Image.new("RGB", (cols * (cw + 8), rows * (ch + 8)), (255, 255, 255))
    for n, cell in enumerate(cells):
        grid.paste(cell, ((n % cols) * (cw + 8), (n // cols) * (ch + 8)))
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    return out
