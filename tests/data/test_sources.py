from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orl.data.sources import DataSourceError, resolve_sources
from tests.conftest import write_images


def test_folder_is_recursive_and_sorted(tmp_path: Path) -> None:
    write_images(tmp_path / "d" / "b", 2)
    write_images(tmp_path / "d" / "a", 2)
    (tmp_path / "d" / "notes.txt").write_text("not an image")
    images = resolve_sources([tmp_path / "d"])
    assert [images.relpath(i) for i in range(len(images))] == [
        "a/img_000.jpg",
        "a/img_001.jpg",
        "b/img_000.jpg",
        "b/img_001.jpg",
    ]
    assert Path(images.path(0)).is_absolute()


def test_list_file_coco_json_and_concatenation(tmp_path: Path) -> None:
    write_images(tmp_path / "coco" / "train2017", 3)
    ann = tmp_path / "coco" / "annotations" / "instances_train2017.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(
        json.dumps(
            {
                "images": [
                    {"id": 7, "file_name": "img_002.jpg"},
                    {"id": 3, "file_name": "img_000.jpg"},
                ]
            }
        )
    )
    lst = tmp_path / "list.txt"
    lst.write_text("# comment\ncoco/train2017/img_001.jpg\n\n")
    images = resolve_sources([ann, lst])
    assert len(images) == 3
    assert [Path(images.path(i)).name for i in range(3)] == [
        "img_002.jpg",
        "img_000.jpg",
        "img_001.jpg",
    ]
    assert images.coco_ids.tolist() == [7, 3, -1]
    assert images.source_index.tolist() == [0, 0, 1]
    explicit = resolve_sources([f"{ann}:{tmp_path / 'coco' / 'train2017'}"])
    assert explicit.path(0) == images.path(0)


def test_fingerprint_depends_on_order_names_and_sizes(tmp_path: Path) -> None:
    write_images(tmp_path / "a", 3)
    fp = resolve_sources([tmp_path / "a"]).fingerprint
    assert resolve_sources([tmp_path / "a"]).fingerprint == fp
    lst = tmp_path / "rev.txt"
    lst.write_text("\n".join(f"a/img_{i:03d}.jpg" for i in (2, 1, 0)))
    assert resolve_sources([lst]).fingerprint != fp
    with (tmp_path / "a" / "img_000.jpg").open("ab") as f:
        f.write(b"\0")
    assert resolve_sources([tmp_path / "a"]).fingerprint != fp


@pytest.mark.parametrize("spec", ["missing_dir", "notes.csv", "empty_dir"])
def test_bad_sources_raise_one_line_errors(tmp_path: Path, spec: str) -> None:
    (tmp_path / "notes.csv").write_text("x")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataSourceError) as err:
        resolve_sources([tmp_path / spec])
    assert "\n" not in str(err.value) and spec in str(err.value)


def _names(folder: Path) -> list[str]:
    images = resolve_sources([folder])
    return [images.relpath(i) for i in range(len(images))]


def test_a_folder_link_back_into_the_tree_lists_each_image_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_images(data / "a", 2)
    (data / "loop").symlink_to(".")
    (data / "a" / "back").symlink_to("..")
    assert _names(data) == ["a/img_000.jpg", "a/img_001.jpg"]


def test_links_to_the_root_and_its_ancestors_are_not_followed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_images(data, 1)
    write_images(tmp_path / "sibling", 1)
    (data / "self").symlink_to(".")
    (data / "up").symlink_to("..")
    (data / "upup").symlink_to("../..")
    assert _names(data) == ["img_000.jpg"]


def test_links_to_other_folders_are_followed_and_real_paths_win(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_images(data / "b", 1)
    write_images(tmp_path / "elsewhere", 1)
    (data / "a_link").symlink_to("b")  # sorts first, but b is the real folder
    (data / "ext").symlink_to(tmp_path / "elsewhere")
    (data / "ext2").symlink_to(tmp_path / "elsewhere")
    assert _names(data) == ["b/img_000.jpg", "ext/img_000.jpg"]


def test_a_file_name_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_images(data, 1)
    bad = os.path.join(os.fsencode(data), b"caf\xe9.jpg")  # Latin-1, as old cameras wrote
    with open(bad, "wb") as f:
        f.write((data / "img_000.jpg").read_bytes())
    with pytest.raises(DataSourceError) as err:
        resolve_sources([data])
    assert "caf\\xe9.jpg" in str(err.value) and "not valid UTF-8" in str(err.value)


def test_a_coco_image_id_that_is_not_a_number_names_the_entry(tmp_path: Path) -> None:
    write_images(tmp_path / "coco" / "train2017", 2)
    ann = tmp_path / "coco" / "annotations" / "instances_train2017.json"
    ann.parent.mkdir(parents=True)
    images = [{"id": 1, "file_name": "img_000.jpg"}, {"id": "x7", "file_name": "img_001.jpg"}]
    ann.write_text(json.dumps({"images": images}))
    with pytest.raises(DataSourceError) as err:
        resolve_sources([ann])
    assert "images[1] (img_001.jpg) has id 'x7'" in str(err.value)


def test_a_list_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    lst = tmp_path / "list.txt"
    lst.write_bytes(b"caf\xe9.jpg\n")
    with pytest.raises(DataSourceError, match=r"list\.txt: not UTF-8"):
        resolve_sources([lst])
