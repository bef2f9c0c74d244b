"""Writing the scene benchmark (``orl scenes DIR``) from synthetic stamps, and its CLI errors."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from orl.cli import main
from orl.data.photo_sources import FetchError
from orl.data.scenes import build
from orl.data.scenes.build import (
    ScenesSummary,
    build_scenes,
    build_scenes_from,
    image_dir,
    instances_json,
    split_ids,
)
from orl.data.scenes.catalogue import ScenesError, select_stamps
from orl.data.scenes.compose import MIN_VISIBLE, Background, SceneStyle, Stamp, box_of
from orl.data.scenes.fetch import Inputs
from orl.data.sources import resolve_sources
from tests.data.scenes.conftest import CATEGORIES, SIZE, synthetic_rgba
from tests.data.test_photos import _make_deb

N_TRAIN, N_TEST = 24, 16
# pycocotools' decode trips a NumPy 2 deprecation inside the library, not in our code.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _build(
    out: Path,
    stamps: list[Stamp],
    backgrounds: list[Background],
    seed: int = 0,
    workers: int | None = None,
) -> ScenesSummary:
    return build_scenes_from(
        out,
        stamps,
        backgrounds,
        CATEGORIES,
        size=SIZE,
        n_train=N_TRAIN,
        n_test=N_TEST,
        seed=seed,
        workers=workers,
        log=lambda _: None,
    )


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, stamps: list[Stamp], backgrounds: list[Background]
) -> Path:
    out = tmp_path_factory.mktemp("scenes")
    _build(out, stamps, backgrounds, workers=1)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _doc(root: Path, split: str) -> dict[str, Any]:
    return dict(json.loads(instances_json(root, split).read_text()))


def test_same_seed_gives_identical_files_for_any_worker_count(
    built: Path, tmp_path: Path, stamps: list[Stamp], backgrounds: list[Background]
) -> None:
    _build(tmp_path / "two", stamps, backgrounds, workers=2)
    _build(tmp_path / "seed1", stamps, backgrounds, workers=1, seed=1)
    reference = _files(built)
    assert {"train/000000.png", "test/000015.png", "meta.json", "LICENSES.md"} <= set(reference)
    assert _files(tmp_path / "two") == reference
    other = _files(tmp_path / "seed1")
    assert other["train/000000.png"] != reference["train/000000.png"]
    assert (
        other["annotations/instances_train.json"] != reference["annotations/instances_train.json"]
    )


def test_splits_share_no_instance_and_no_background(built: Path) -> None:
    meta = json.loads((built / "meta.json").read_text())
    assert not set(meta["instances"]["train"]) & set(meta["instances"]["test"])
    assert not set(meta["backgrounds"]["train"]) & set(meta["backgrounds"]["test"])
    for split in ("train", "test"):
        doc = _doc(built, split)
        assert {a["instance_id"] for a in doc["annotations"]} <= set(meta["instances"][split])
        assert {im["background_id"] for im in doc["images"]} <= set(meta["backgrounds"][split])


def test_test_seen_puts_train_instances_on_test_backgrounds(
    built: Path, tmp_path: Path, stamps: list[Stamp], backgrounds: list[Background]
) -> None:
    out = tmp_path / "seen"
    summary = build_scenes_from(
        out, stamps, backgrounds, CATEGORIES, size=SIZE, n_train=N_TRAIN, n_test=N_TEST,
        n_test_seen=10, style=SceneStyle(hue=0.1), workers=1, log=lambda _: None,
    )  # fmt: skip
    meta = json.loads((out / "meta.json").read_text())
    doc = _doc(out, "test_seen")
    assert summary.scenes == {"train": N_TRAIN, "test": N_TEST, "test_seen": 10}
    assert len(doc["images"]) == 10 and meta["counts"]["test_seen"]["scenes"] == 10
    assert {a["instance_id"] for a in doc["annotations"]} <= set(meta["instances"]["train"])
    assert {im["background_id"] for im in doc["images"]} <= set(meta["backgrounds"]["test"])
    seen = resolve_sources([str(instances_json(out, "test_seen"))])
    assert Path(seen.path(0)) == out / "test_seen" / "000000.png"
    # The style is part of the settings: the plain build's stamp does not match this one.
    assert meta["style"]["hue"] == 0.1
    assert meta["settings"] != json.loads((built / "meta.json").read_text())["settings"]


def test_split_ids_cut_each_group_65_35_and_lose_nothing() -> None:
    ids, groups = list(range(40)), ["a"] * 20 + ["b"] * 17 + ["c"] * 3
    train, test = split_ids(ids, groups, (0, 1))
    assert sorted(train + test) == ids and not set(train) & set(test)
    assert [sum(groups[i] == g for i in train) for g in "abc"] == [13, 11, 2]
    assert split_ids(ids, groups, (0, 1)) == [train, test] != split_ids(ids, groups, (1, 1))


def test_annotations_match_the_decoded_masks(built: Path) -> None:
    for split, count in (("train", N_TRAIN), ("test", N_TEST)):
        doc = _doc(built, split)
        assert [im["id"] for im in doc["images"]] == list(range(1, count + 1))
        by_image: dict[int, list[np.ndarray]] = {}
        for ann in doc["annotations"]:
            mask = mask_utils.decode(ann["segmentation"]).astype(bool)
            assert mask.shape == (SIZE, SIZE)
            assert ann["bbox"] == [float(v) for v in box_of(mask)]
            assert ann["area"] == mask.sum()
            assert ann["visible_fraction"] == mask.sum() / ann["full_area"] >= MIN_VISIBLE
            x, y, w, h = ann["bbox"]
            fx, fy, fw, fh = ann["full_bbox"]
            assert fx <= x and fy <= y and x + w <= fx + fw and y + h <= fy + fh
            by_image.setdefault(ann["image_id"], []).append(mask)
        for masks in by_image.values():
            assert np.sum(masks, axis=0).max() <= 1  # no pixel has two owners
        image = Image.open(image_dir(built, split) / doc["images"][0]["file_name"])
        assert image.mode == "RGB" and image.size == (SIZE, SIZE)


def test_pycocotools_loads_the_split_and_scenes_hold_2_to_4_distinct_categories(
    built: Path,
) -> None:
    coco = COCO(str(instances_json(built, "train")))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CATEGORIES)
    for image_id in coco.getImgIds():
        categories = [a["category_id"] for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))]
        assert 2 <= len(categories) <= 4 and len(set(categories)) == len(categories)


def test_labels_csv_lists_the_categories_present(built: Path) -> None:
    doc = _doc(built, "test")
    rows = list(csv.DictReader(io.StringIO((built / "test_labels.csv").read_text())))
    assert [r["file"] for r in rows] == [f"test/{im['file_name']}" for im in doc["images"]]
    present: dict[int, set[str]] = {}
    for ann in doc["annotations"]:
        present.setdefault(ann["image_id"], set()).add(CATEGORIES[ann["category_id"] - 1])
    assert [set(r["labels"].split()) for r in rows] == [present[i + 1] for i in range(N_TEST)]


def test_the_train_json_is_a_data_source_of_the_train_scenes_in_id_order(built: Path) -> None:
    images = resolve_sources([str(instances_json(built, "train"))])
    assert images.coco_ids.tolist() == list(range(1, N_TRAIN + 1))
    assert [images.path(i) for i in range(len(images))] == [
        str((image_dir(built, "train") / f"{i:06d}.png").absolute()) for i in range(N_TRAIN)
    ]


def test_rerun_is_a_no_op_and_other_settings_are_refused(
    built: Path, tmp_path: Path, stamps: list[Stamp], backgrounds: list[Background]
) -> None:
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*")}
    summary = _build(built, stamps, backgrounds)
    assert summary.reused and summary.scenes == {"train": N_TRAIN, "test": N_TEST}
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*")} == before
    with pytest.raises(ScenesError, match=r"other settings.*seed 0 -> 3"):
        _build(built, stamps, backgrounds, seed=3)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ScenesError, match="not empty"):
        _build(tmp_path, stamps, backgrounds)


def test_cli_errors_are_one_line(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["scenes", str(tmp_path / "a"), "--categories", "birds"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown category set 'birds'" in err and len(err.splitlines()) == 1
    assert main(["scenes", str(built)]) == 2  # built from other inputs and settings
    err = capsys.readouterr().err.strip()
    assert "other settings" in err and len(err.splitlines()) == 1
    for bad, says in (("hue=0.7", "hue in [0, 0.5]"), ("colour=1", "unknown key 'colour'")):
        assert main(["scenes", str(tmp_path / "c"), "--test-seen", "5", "--set", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "c").exists()  # refused before anything is written

    def no_apt(*args: object) -> None:
        raise FetchError("cannot fetch the object stamps: apt-get is not installed")

    monkeypatch.setattr(build, "load_inputs", no_apt)
    assert main(["scenes", str(tmp_path / "b"), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err.strip()
    assert "apt-get is not installed" in err and len(err.splitlines()) == 1


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_build_scenes_reads_the_packages_in_the_cache(tmp_path: Path) -> None:
    """The real fetch path offline: fake archives in the cache stand in for the packages."""
    cache = tmp_path / "cache"
    birds = [e for e in select_stamps("fast") if e.category == "bird"][:2]
    bovids = [e for e in select_stamps("fast") if e.category == "bovid"][:2]
    members = {e.path: _png(synthetic_rgba(k % 2, k)) for k, e in enumerate(birds + bovids)}
    (cache / "debian").mkdir(parents=True)
    _make_deb(cache / "debian" / "tuxpaint-stamps-default_2022.06.04-1_all.deb", members)
    rng = np.random.default_rng(0)
    photos = {
        f"usr/share/tuxpaint/templates/{n}.jpg": _png(
            rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
        )
        for n in ("cliff", "rocks")
    }
    _make_deb(cache / "debian" / "tuxpaint-data_1%3a0.9.28-1_all.deb", photos)
    _make_deb(cache / "debian" / "gcompris-qt-data_3.1-2_all.deb", {})
    (cache / "pypi").mkdir()
    with zipfile.ZipFile(cache / "pypi" / "mvtb_data-1.6.1-py3-none-any.whl", "w") as zf:
        zf.writestr("mvtbdata/images/road.png", _png(rng.integers(0, 256, (80, 80, 3), np.uint8)))
    with zipfile.ZipFile(cache / "pypi" / "scikit_image-0.26.0-cp311-none-any.whl", "w") as zf:
        zf.writestr("skimage/data/brick.png", _png(np.full((80, 80), 128, np.uint8)))
    out = tmp_path / "scenes"
    summary = build_scenes(
        out, categories="fast", size=SIZE, n_train=6, n_test=4, cache=cache, log=lambda _: None
    )
    assert summary.scenes == {"train": 6, "test": 4} and not summary.reused
    meta = json.loads((out / "meta.json").read_text())
    assert meta["packages"]["debian:tuxpaint-data"] == "1:0.9.28-1"
    assert meta["packages"]["pypi:scikit-image"] == "0.26.0"
    assert meta["dropped"]["gray_backgrounds"] == ["scikit-image/brick.png"]
    assert len(meta["instances"]["train"]) == len(meta["instances"]["test"]) == 2
    licences = (out / "LICENSES.md").read_text()
    assert "tuxpaint-stamps-default | 2022.06.04-1 | GPL-2" in licences
    assert "scikit-image" not in licences  # its only photo was gray: nothing of it is used
    assert build_scenes(
        out, categories="fast", size=SIZE, n_train=6, n_test=4, cache=cache, log=lambda _: None
    ).reused


def test_cli_builds_the_test_seen_split_with_the_style(
    tmp_path: Path,
    stamps: list[Stamp],
    backgrounds: list[Background],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def synthetic(*args: object) -> Inputs:
        return Inputs(stamps, backgrounds, list(CATEGORIES), {})

    monkeypatch.setattr(build, "load_inputs", synthetic)
    out = tmp_path / "scenes"
    argv = ["scenes", str(out), "--size", str(SIZE), "--train", "6", "--test", "4"]
    argv += ["--test-seen", "3", "--set", "hue=0.2", "--set", "objects=[2,2]"]
    assert main(argv) == 0
    assert "6 train + 4 test + 3 test_seen scenes" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["style"]["hue"] == 0.2 and meta["counts"]["test_seen"]["scenes"] == 3
    assert all(len(ann) == 2 for ann in _objects_per_image(_doc(out, "test_seen")).values())


def _objects_per_image(doc: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    per: dict[int, list[dict[str, Any]]] = {}
    for a in doc["annotations"]:
        per.setdefault(a["image_id"], []).append(a)
    return per
