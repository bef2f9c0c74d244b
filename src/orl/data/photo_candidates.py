"""The photos in one source's archive (``photos.py`` writes them): its photo files, frames sampled
from its videos and from its folders of consecutive frames, and the photos inside its Qt ``.rcc``
bundles (``qt_resources.py``), read in memory (``archives.py``).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import cv2

from orl.data.archives import iter_archive_files
from orl.data.photo_sources import FetchError, PhotoSource
from orl.data.qt_resources import RccFormatError, iter_rcc_entries

# Video frames are highly correlated: sample sparsely and cap each clip so that image kNN in
# stage 1 is not dominated by neighbouring frames of one clip.
VIDEO_FRAME_STEP = 10
VIDEO_FRAME_CAP = 30
JPEG_QUALITY = 95

Log = Callable[[str], None]


def iter_candidates(source: PhotoSource, archive: Path, log: Log) -> Iterator[tuple[str, bytes]]:
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
