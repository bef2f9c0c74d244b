"""`orl corr import-json` checks every field of the authors' schema and names the image and the
field of the first one that does not fit; it streams the file and never replaces a store unasked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from discover_helpers import assert_same_store

from orl.data.sources import resolve_sources
from orl.discover.authors_json import AuthorsJsonError
from orl.discover.interop import export_authors_json, import_authors_json
from orl.discover.store import CorrespondenceStore

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, baseline: Path, photos: Path) -> Doc:
    out = tmp_path_factory.mktemp("json") / "a.json"
    export_authors_json(CorrespondenceStore.open(baseline), resolve_sources([photos]), out)
    doc: Doc = json.loads(out.read_text())
    return doc


def _ann(doc: Doc) -> Doc:
    ann: Doc = doc["pseudo_annotations"]
    return ann


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation of the document: `path` is dotted keys and list positions."""

    def mutate(doc: Doc) -> None:
        *head, last = path.split(".")
        node: Any = doc
        for part in head:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _shorten(path: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        node: Any = doc
        for part in path.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        node.pop()

    return mutate


CASES = {
    "non-string file_name": (_set("images.file_name.2", 5), "image 2 (s2.jpg): images.file_name"),
    "one-level knn_image_id": (
        _set("pseudo_annotations.knn_image_id.1", 3),
        "image 1 (s1.jpg): pseudo_annotations.knn_image_id",
    ),
    "neighbour id >= N": (_set("pseudo_annotations.knn_image_id.0.0", 9), "neighbour 9"),
    "bool neighbour id": (_set("pseudo_annotations.knn_image_id.0.0", True), "neighbour True"),
    "short knn_bbox_pair row": (
        _set("pseudo_annotations.knn_bbox_pair.0.1", [[1, 2, 3]]),
        "image 0 (s0.jpg): pseudo_annotations.knn_bbox_pair[1]",
    ),
    "missing neighbour list": (
        _shorten("pseudo_annotations.knn_bbox_pair.4"),
        "image 4 (s4.jpg): pseudo_annotations.knn_bbox_pair",
    ),
    "pair box not in bbox": (
        _set("pseudo_annotations.knn_bbox_pair.3.0.0", [9999, 0, 1, 1, 0, 0, 1, 1]),
        "image 3 (s3.jpg): pseudo_annotations.knn_bbox_pair[0]: pair",
    ),
    "empty bbox": (
        _set("pseudo_annotations.bbox.2", []),
        "image 2 (s2.jpg): pseudo_annotations.bbox",
    ),
    "NaN in bbox": (_set("pseudo_annotations.bbox.1.0.0", float("nan")), "NaN"),
    "string in bbox": (_set("pseudo_annotations.bbox.1.0.0", "12"), "pseudo_annotations.bbox"),
    "fewer similarities than pairs": (
        _shorten("pseudo_annotations.knn_bbox_pair_sim.2.0"),
        "image 2 (s2.jpg): pseudo_annotations.knn_bbox_pair_sim",
    ),
    "fewer images in a column": (_shorten("pseudo_annotations.bbox"), "has 8 entries but"),
    "info as a list": (_set("info", []), "info: must be an object"),
    "flags as a list": (_set("info.orl.flags", [1]), "info.orl.flags: must be an object"),
    "flag of an unknown image": (_set("info.orl.flags", {"99": 1}), "'99' is not an image"),
    "flag value out of range": (
        _set("info.orl.flags", {"3": 9}),
        "image 3 (s3.jpg): info.orl.flags",
    ),
    "missing column": (
        lambda doc: [_ann(doc).pop(k) for k in ("knn_bbox_pair", "knn_bbox_pair_sim")],
        "pseudo_annotations.knn_bbox_pair: missing",
    ),
    "pseudo_annotations as a list": (_set("pseudo_annotations", []), "must be an object"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_malformed_field_is_one_line_naming_image_and_field(
    tmp_path: Path, exported: Doc, photos: Path, case: str
) -> None:
    mutate, expected = CASES[case]
    doc = json.loads(json.dumps(exported))
    mutate(doc)
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(doc))
    with pytest.raises(AuthorsJsonError) as info:
        import_authors_json(src, resolve_sources([photos]), tmp_path / "store")
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(src)) and expected in message
    assert not (tmp_path / "store").exists()  # checked whole before anything is written


def test_a_torn_file_is_one_line(tmp_path: Path, exported: Doc, photos: Path) -> None:
    src = tmp_path / "torn.json"
    src.write_text(json.dumps(exported)[:-40])
    with pytest.raises(AuthorsJsonError, match="not an authors' correspondence JSON"):
        import_authors_json(src, resolve_sources([photos]), tmp_path / "store")


def test_import_streams_and_never_loads_the_whole_document(
    tmp_path: Path, exported: Doc, photos: Path, baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "a.json"
    src.write_text(json.dumps(exported, indent=1))

    def whole_document(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole JSON document was loaded at once")

    monkeypatch.setattr(json, "load", whole_document)
    monkeypatch.setattr(json, "loads", whole_document)
    import_authors_json(src, resolve_sources([photos]), tmp_path / "store")
    monkeypatch.undo()
    assert_same_store(baseline, tmp_path / "store")


def test_an_existing_store_is_replaced_only_with_force(
    tmp_path: Path, exported: Doc, photos: Path
) -> None:
    src = tmp_path / "a.json"
    src.write_text(json.dumps(exported))
    store = tmp_path / "store"
    images = resolve_sources([photos])
    import_authors_json(src, images, store)
    before = {p.name: p.read_bytes() for p in store.iterdir()}
    with pytest.raises(AuthorsJsonError, match="--force"):
        import_authors_json(src, images, store)
    assert {p.name: p.read_bytes() for p in store.iterdir()} == before
    import_authors_json(src, images, store, force=True)
    assert CorrespondenceStore.open(store).num_images == len(images)
