"""Line plots and histograms drawn with PIL, for the training curves and stage-2 statistics of the
report (matplotlib is not a dependency). Axes with 1-2-5 ticks, light grid lines and a legend."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
)
SIZE = (640, 300)
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 40
AXIS, GRID, TEXT = (60, 60, 60), (225, 225, 225), (0, 0, 0)
FONT = ImageFont.load_default(size=12)


@dataclass(frozen=True)
class Series:
    """One named line: y against x (points with a non-finite y are left out)."""

    name: str
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Frame:
    """The plot area in pixels, and the ticks of each axis (the first and last bound the range)."""

    left: int
    top: int
    right: int
    bottom: int
    xticks: tuple[float, ...]
    yticks: tuple[float, ...]

    @property
    def x0(self) -> float:
        return self.xticks[0]

    @property
    def x1(self) -> float:
        return self.xticks[-1]

    @property
    def y0(self) -> float:
        return self.yticks[0]

    @property
    def y1(self) -> float:
        return self.yticks[-1]

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def py(self, y: float) -> float:
        return self.bottom - (y - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)


def nice_ticks(lo: float, hi: float, target: int = 5, min_step: float = 0.0) -> list[float]:
    """About `target` round tick values (steps of 1, 2 or 5 x 10^n, at least `min_step`)
    covering [lo, hi]."""
    if not hi > lo:
        return [lo]
    raw = max((hi - lo) / target, min_step)
    base = 10.0 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1.0, 2.0, 5.0, 10.0) if m * base >= raw)
    first = math.floor(lo / step) * step
    count = math.ceil(hi / step - first / step) + 1
    # round() removes float noise like 0.30000000000000004 from the labels.
    return [round(first + i * step, 12) for i in range(count)]


def fmt(value: float) -> str:
    """A short tick label."""
    return f"{value:.3g}"


def _padded(lo: float, hi: float) -> tuple[float, float]:
    if hi > lo:
        return lo, hi
    half = abs(lo) * 0.05 or 0.5
    return lo - half, hi + half


def _frame(
    x: tuple[float, float],
    y: tuple[float, float],
    size: tuple[int, int],
    x_step: float = 0.0,
    y_step: float = 0.0,
) -> Frame:
    """The plot area for data in x x y, ticks at least `x_step` / `y_step` apart (1 for counts)."""
    xt = nice_ticks(*_padded(*x), min_step=x_step)
    yt = nice_ticks(*_padded(*y), min_step=y_step)
    right, bottom = size[0] - MARGIN_RIGHT, size[1] - MARGIN_BOTTOM
    return Frame(MARGIN_LEFT, MARGIN_TOP, right, bottom, tuple(xt), tuple(yt))


def _axes(
    draw: ImageDraw.ImageDraw, f: Frame, title: str, xlabel: str, size: tuple[int, int]
) -> None:
    """Grid lines, tick labels, the axis box, the title and the x label."""
    for t in f.xticks:
        x = f.px(t)
        draw.line((x, f.top, x, f.bottom), fill=GRID)
        draw.text((x, f.bottom + 4), fmt(t), fill=TEXT, font=FONT, anchor="ma")
    for t in f.yticks:
        y = f.py(t)
        draw.line((f.left, y, f.right, y), fill=GRID)
        draw.text((f.left - 4, y), fmt(t), fill=TEXT, font=FONT, anchor="rm")
    draw.rectangle((f.left, f.top, f.right, f.bottom), outline=AXIS)
    draw.text((size[0] // 2, 6), title, fill=TEXT, font=FONT, anchor="ma")
    draw.text(((f.left + f.right) // 2, size[1] - 4), xlabel, fill=TEXT, font=FONT, anchor="md")


def _legend(draw: ImageDraw.ImageDraw, f: Frame, names: Sequence[str]) -> None:
    """Colour swatches and names in the top-right corner of the plot area, on white."""
    width = max(int(draw.textlength(n, font=FONT)) for n in names) + 30
    x, y = f.right - width - 6, f.top + 6
    draw.rectangle((x, y, x + width, y + 16 * len(names) + 4), fill=(255, 255, 255), outline=GRID)
    for i, name in enumerate(names):
        cy = y + 10 + 16 * i
        draw.line((x + 6, cy, x + 22, cy), fill=PALETTE[i % len(PALETTE)], width=3)
        draw.text((x + 26, cy), name, fill=TEXT, font=FONT, anchor="lm")


def line_plot(
    series: Sequence[Series], title: str, xlabel: str, size: tuple[int, int] = SIZE
) -> Image.Image:
    """Every series as a polyline in its own colour, with a legend; a lone point is a dot."""
    kept = []
    for s in series:
        x, y = np.asarray(s.x, dtype=np.float64), np.asarray(s.y, dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        kept.append((s.name, x[ok], y[ok]))
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    points = [(x, y) for _, x, y in kept if len(x)]
    if not points:
        draw.text((size[0] // 2, size[1] // 2), f"{title}: no data", fill=TEXT, anchor="mm")
        return img
    xs = np.concatenate([x for x, _ in points])
    ys = np.concatenate([y for _, y in points])
    f = _frame((float(xs.min()), float(xs.max())), (float(ys.min()), float(ys.max())), size)
    _axes(draw, f, title, xlabel, size)
    for i, (_, x, y) in enumerate(kept):
        colour = PALETTE[i % len(PALETTE)]
        line = [(f.px(float(a)), f.py(float(b))) for a, b in zip(x, y, strict=True)]
        if len(line) == 1:
            (cx, cy) = line[0]
            draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=colour)
        elif line:
            draw.line(line, fill=colour, width=2)
    _legend(draw, f, [name for name, _, _ in kept])
    return img


def histogram(
    values: np.ndarray, title: str, xlabel: str, max_bins: int = 30, size: tuple[int, int] = SIZE
) -> Image.Image:
    """Counts of `values` (non-finite ones left out) as bars.

    Integer values spanning at most `max_bins` get one bar per integer; others `max_bins` bins.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    if not len(v):
        draw.text((size[0] // 2, size[1] // 2), f"{title}: no data", fill=TEXT, anchor="mm")
        return img
    lo, hi = float(v.min()), float(v.max())
    integer = bool(np.all(v == np.round(v))) and hi - lo < max_bins
    if integer:
        # One bar per whole number, with an empty one either side so a single value is not
        # drawn as a bar filling the whole plot.
        edges = np.arange(lo - 1.5, hi + 2.5)
    else:
        edges = np.linspace(*_padded(lo, hi), max_bins + 1)
    counts, edges = np.histogram(v, bins=edges)
    x_range = (float(edges[0]), float(edges[-1]))
    f = _frame(x_range, (0.0, float(counts.max())), size, 1.0 if integer else 0.0, 1.0)
    _axes(draw, f, title, xlabel, size)
    for c, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
        if c:
            box = (f.px(float(a)) + 1, f.py(float(c)), f.px(float(b)) - 1, f.py(0.0))
            draw.rectangle(box, fill=PALETTE[0], outline=AXIS)
    return img
