"""Compose one labelled scene: real cut-out object photos pasted on a crop of a background photo.

The generation rules of ``docs/scenes.md``: 2-4 objects of different categories (``SceneStyle``
sets the count, the area and the rotation), each scaled by its *visible* (alpha) area so that
thin objects stay visible, randomly mirrored, rotated by up to +-15 degrees, with a lightly
feathered matte and, half the time, a soft shadow. Optionally each pasted copy also changes its
look (hue, saturation, brightness, blur), as a real object's appearance changes between photos.
Later objects occlude earlier ones; a placement that would leave an earlier object less than 60%
of its pixels is retried and, after a few tries, the object is dropped (a scene keeps at least 2
objects or is drawn again). Every pixel has at most one owner, so the visible masks of a scene are
disjoint.

Everything here is a pure function of a ``numpy.random.Generator`` and the inputs, so a scene is
reproduced exactly from its generator, whatever process or order it is drawn in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

MAX_SIDE_FRACTION = 0.9  # a long thin object is shrunk until its box fits in 90% of the side
MIN_VISIBLE = 0.6
PLACEMENT_TRIES = 5
SCENE_TRIES = 50
MATTE_THRESHOLD = 0.5  # alpha at or above it: a pixel of the object (its mask and its box)
FEATHER_SIGMA = 0.6  # px; softens the matte inwards only, so no background-coloured fringe
SHADOW_PROBABILITY = 0.5
SHADOW_OPACITY = 0.45
SHADOW_OFFSET = (0.015, 0.04)  # of the scene side, down and to the right
SHADOW_BLUR = 0.015  # of the scene side
BACKGROUND_CROP = (0.5, 1.0)  # crop side / shorter side of the background photo
BACKGROUND_SHORT_SIDE = 2  # backgrounds are kept at twice the scene size (crops then shrink)
# Mean max-min channel spread (of 255) below which a photo counts as gray: the gray photos of the
# list score 0, the dullest colour ones (bark with moss, a slate roof) score 4-8.
GRAY_CHROMA = 3.0
FLAT_BORDER_STD = 3.0  # edge rows/columns this flat and this dark are letterbox bars, cut off
BLACK_BAR_LEVEL = 32.0


@dataclass(frozen=True)
class SceneStyle:
    """What varies from scene to scene. The defaults are the original benchmark's, and with them
    no appearance parameter is drawn, so its scenes stay bit-identical."""

    # An object's matte area is this fraction of the scene area (uniform): 4% is a 26 x 26 px
    # object at 128 px, large enough to recognise; 20% keeps room for 4 objects with at most 40%
    # occlusion.
    objects: tuple[int, int] = (2, 4)
    area: tuple[float, float] = (0.04, 0.20)
    rotation: float = 15.0  # max |angle| in degrees
    # Appearance of each pasted copy: hue shift ~ U(-hue, hue) of the colour circle, saturation and
    # brightness (HSV value) factors ~ U(range), Gaussian blur sigma ~ U(0, blur) px.
    hue: float = 0.0
    saturation: tuple[float, float] = (1.0, 1.0)
    brightness: tuple[float, float] = (1.0, 1.0)
    blur: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.objects
        if not 1 <= lo <= hi:
            raise ValueError(f"objects {self.objects}: need 1 <= min <= max")
        if not 0 < self.area[0] <= self.area[1] <= 0.9:
            raise ValueError(f"area {self.area}: need 0 < min <= max <= 0.9 of the scene")
        if not 0 <= self.rotation <= 180 or not 0 <= self.hue <= 0.5 or self.blur < 0:
            raise ValueError("rotation must be in [0, 180], hue in [0, 0.5], blur >= 0")
        for name in ("saturation", "brightness"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} ({low}, {high}): need 0 <= min <= max")

    @property
    def recolours(self) -> bool:
        return self.hue > 0 or self.saturation != (1.0, 1.0) or self.brightness != (1.0, 1.0)


DEFAULT_STYLE = SceneStyle()


@dataclass(frozen=True)
class Stamp:
    """A cut-out object: ``rgba`` is uint8, colour premultiplied by alpha, cropped to the matte."""

    instance_id: int
    category: int  # index into the benchmark's category names
    rgba: np.ndarray
    area: float  # sum of alpha in pixels at native scale: the area the object covers


@dataclass(frozen=True)
class Background:
    """A background photo (uint8 RGB); ``group`` (its package) stratifies the train/test split."""

    background_id: int
    name: str
    group: str
    rgb: np.ndarray


@dataclass(frozen=True)
class PlacedObject:
    """One object of a scene. Boxes are ``(x, y, w, h)`` in pixels."""

    category: int
    instance_id: int
    full_box: tuple[int, int, int, int]  # box of the whole pasted matte
    pixels: int  # pixels of the whole pasted matte
    mask: np.ndarray  # bool (size, size): the pixels this object still owns

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def visible_fraction(self) -> float:
        return self.area / self.pixels

    @property
    def visible_box(self) -> tuple[int, int, int, int]:
        return box_of(self.mask)


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # uint8 (size, size, 3)
    background_id: int
    objects: tuple[PlacedObject, ...]


@dataclass(frozen=True)
class _Sprite:
    colour: np.ndarray  # float32 (h, w, 3), straight (not premultiplied) colour
    alpha: np.ndarray  # float32 (h, w), feathered opacity used for compositing
    matte: np.ndarray  # bool (h, w), the object's pixels


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the True pixels of a non-empty 2-D mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def prepare_stamp(rgba: np.ndarray, instance_id: int, category: int) -> Stamp:
    """Crop a decoded RGBA cut-out to its alpha and premultiply it (so resampling adds no halo)."""
    alpha = rgba[..., 3]
    if not alpha.any():
        raise ValueError(f"stamp {instance_id} is fully transparent")
    x, y, w, h = box_of(alpha > 0)
    crop = rgba[y : y + h, x : x + w].astype(np.uint16)
    premultiplied = crop.copy()
    premultiplied[..., :3] = (crop[..., :3] * crop[..., 3:] + 127) // 255
    area = float(crop[..., 3].sum()) / 255.0
    return Stamp(instance_id, category, premultiplied.astype(np.uint8), area)


def is_grayscale(rgb: np.ndarray) -> bool:
    """Whether a photo is (nearly) without colour: colour objects would pop out of it."""
    step = max(1, min(rgb.shape[:2]) // 128)
    sample = rgb[::step, ::step].astype(np.int16)
    return float((sample.max(axis=2) - sample.min(axis=2)).mean()) < GRAY_CHROMA


def _trim_black_bars(rgb: np.ndarray) -> np.ndarray:
    """Drop edge rows and columns that are flat and dark: letterbox bars (two templates)."""
    pixels = rgb.astype(np.float32)

    def content(axis: int) -> np.ndarray:
        flat = pixels.std(axis=axis).max(axis=1) < FLAT_BORDER_STD
        dark = pixels.mean(axis=axis).max(axis=1) < BLACK_BAR_LEVEL
        return np.flatnonzero(~(flat & dark))

    rows, cols = content(1), content(0)
    if len(rows) == 0 or len(cols) == 0:
        return rgb
    return rgb[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def prepare_background(
    rgb: np.ndarray, background_id: int, name: str, group: str, size: int
) -> Background:
    """Shrink to a shorter side of ``BACKGROUND_SHORT_SIDE * size`` and cut letterbox bars."""
    short = min(rgb.shape[:2])
    target = BACKGROUND_SHORT_SIDE * size
    if short > target:  # shrinking first keeps the bar search cheap on megapixel photos
        h, w = rgb.shape[:2]
        dsize = (max(1, round(w * target / short)), max(1, round(h * target / short)))
        rgb = cv2.resize(rgb, dsize, interpolation=cv2.INTER_AREA)
    return Background(background_id, name, group, np.ascontiguousarray(_trim_black_bars(rgb)))


def _background_crop(rng: np.random.Generator, rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    side = max(1, round(rng.uniform(*BACKGROUND_CROP) * min(h, w)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = rgb[y : y + side, x : x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interpolation)


def _recolour(colour: np.ndarray, rng: np.random.Generator, style: SceneStyle) -> np.ndarray:
    """Shift the hue and scale the saturation and brightness of straight RGB colour (0-255)."""
    hue = rng.uniform(-style.hue, style.hue) * 360.0
    saturation, brightness = rng.uniform(*style.saturation), rng.uniform(*style.brightness)
    hsv = cv2.cvtColor(np.ascontiguousarray(colour / 255.0, dtype=np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + hue, 360.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] * brightness, 0.0, 1.0)
    out: np.ndarray = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
    return out


def _render(stamp: Stamp, rng: np.random.Generator, size: int, style: SceneStyle) -> _Sprite | None:
    """Scale by area, mirror, rotate, restyle and feather one stamp; ``None`` if nothing is left."""
    scale = math.sqrt(rng.uniform(*style.area) * size * size / stamp.area)
    angle = rng.uniform(-style.rotation, style.rotation)
    mirror = rng.random() < 0.5
    h, w = stamp.rgba.shape[:2]
    cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    scale = min(scale, MAX_SIDE_FRACTION * size / max(w * cos + h * sin, w * sin + h * cos))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(stamp.rgba, (sw, sh), interpolation=interpolation)
    if mirror:
        small = np.ascontiguousarray(small[:, ::-1])
    ow, oh = math.ceil(sw * cos + sh * sin) + 2, math.ceil(sw * sin + sh * cos) + 2
    rotation = cv2.getRotationMatrix2D(((sw - 1) / 2, (sh - 1) / 2), angle, 1.0)
    rotation[:, 2] += ((ow - 1) / 2 - (sw - 1) / 2, (oh - 1) / 2 - (sh - 1) / 2)
    warped = cv2.warpAffine(small, rotation, (ow, oh), flags=cv2.INTER_LINEAR)
    if style.blur > 0:  # premultiplied colour blurs without a background-coloured fringe
        sigma = rng.uniform(0.0, style.blur)
        if sigma > 0.05:
            warped = cv2.GaussianBlur(warped, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    alpha = warped[..., 3].astype(np.float32) / 255.0
    matte = alpha >= MATTE_THRESHOLD
    if not matte.any():
        return None
    x, y, bw, bh = box_of(matte)
    alpha, matte = alpha[y : y + bh, x : x + bw], matte[y : y + bh, x : x + bw]
    premultiplied = warped[y : y + bh, x : x + bw, :3].astype(np.float32)
    colour = np.minimum(premultiplied / np.maximum(alpha, 1 / 255)[..., None], 255.0)
    if style.recolours:
        colour = _recolour(colour, rng, style)
    blurred = cv2.GaussianBlur(alpha, (0, 0), FEATHER_SIGMA, borderType=cv2.BORDER_CONSTANT)
    return _Sprite(colour, np.minimum(alpha, blurred), matte)


def _place(
    rng: np.random.Generator,
    matte: np.ndarray,
    owner: np.ndarray,
    owned: np.ndarray,
    pixels: np.ndarray,
) -> tuple[int, int, np.ndarray] | None:
    """A spot where every earlier object keeps >= MIN_VISIBLE of its pixels, and their losses."""
    size = owner.shape[0]
    h, w = matte.shape
    for _ in range(PLACEMENT_TRIES):
        x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
        covered = owner[y : y + h, x : x + w][matte]
        lost = np.bincount(covered[covered >= 0], minlength=len(owned))
        if np.all(owned - lost >= MIN_VISIBLE * pixels):
            return x, y, lost
    return None


def _cast_shadow(
    rng: np.random.Generator, canvas: np.ndarray, sprite: _Sprite, x: int, y: int
) -> None:
    """Darken the canvas under a blurred, offset copy of the matte (drawn before the object)."""
    size = canvas.shape[0]
    dx, dy = (round(v * size) for v in rng.uniform(*SHADOW_OFFSET, size=2))
    h, w = sprite.alpha.shape
    shadow: np.ndarray = np.zeros((size, size), dtype=np.float32)
    x0, y0, x1, y1 = x + dx, y + dy, min(size, x + dx + w), min(size, y + dy + h)
    if x1 > x0 and y1 > y0:  # the offset may push the whole shadow off the canvas
        shadow[y0:y1, x0:x1] = sprite.alpha[: y1 - y0, : x1 - x0]
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(1.0, SHADOW_BLUR * size))
    canvas *= (1.0 - SHADOW_OPACITY * shadow)[..., None]


def _try_scene(
    rng: np.random.Generator,
    pools: Sequence[Sequence[Stamp]],
    categories: list[int],
    backgrounds: Sequence[Background],
    size: int,
    style: SceneStyle,
) -> Scene | None:
    background = backgrounds[int(rng.integers(len(backgrounds)))]
    canvas = _background_crop(rng, background.rgb, size).astype(np.float32)
    count = min(int(rng.integers(style.objects[0], style.objects[1] + 1)), len(categories))
    owner = np.full((size, size), -1, dtype=np.int16)
    owned = np.zeros(0, dtype=np.int64)
    pixels = np.zeros(0, dtype=np.int64)
    placed: list[tuple[Stamp, tuple[int, int, int, int]]] = []
    for category in rng.choice(categories, size=count, replace=False).tolist():
        pool = pools[category]
        stamp = pool[int(rng.integers(len(pool)))]
        sprite = _render(stamp, rng, size, style)
        spot = None if sprite is None else _place(rng, sprite.matte, owner, owned, pixels)
        if sprite is None or spot is None:
            continue  # dropped: no position keeps the earlier objects visible enough
        x, y, lost = spot
        h, w = sprite.matte.shape
        owner[y : y + h, x : x + w][sprite.matte] = len(placed)
        own = int(sprite.matte.sum())
        owned, pixels = np.append(owned - lost, own), np.append(pixels, own)
        if rng.random() < SHADOW_PROBABILITY:
            _cast_shadow(rng, canvas, sprite, x, y)
        region = canvas[y : y + h, x : x + w]
        region *= 1.0 - sprite.alpha[..., None]
        region += sprite.colour * sprite.alpha[..., None]
        placed.append((stamp, (x, y, w, h)))
    if len(placed) < min(2, style.objects[0]):
        return None
    objects = tuple(
        PlacedObject(stamp.category, stamp.instance_id, box, int(pixels[k]), owner == k)
        for k, (stamp, box) in enumerate(placed)
    )
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return Scene(image, background.background_id, objects)


def compose_scene(
    rng: np.random.Generator,
    pools: Sequence[Sequence[Stamp]],
    backgrounds: Sequence[Background],
    size: int,
    style: SceneStyle = DEFAULT_STYLE,
) -> Scene:
    """Draw one scene; ``pools[c]`` holds the stamps of category ``c`` allowed in this split."""
    categories = [c for c, pool in enumerate(pools) if pool]
    if len(categories) < 2 or not backgrounds:
        raise ValueError("a scene needs stamps of at least 2 categories and 1 background")
    for _ in range(SCENE_TRIES):
        scene = _try_scene(rng, pools, categories, backgrounds, size, style)
        if scene is not None:
            return scene
    least = min(2, style.objects[0])
    raise ValueError(f"no scene with {least} visible objects in {SCENE_TRIES} tries at {size} px")
