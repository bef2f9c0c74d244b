"""Boxes in a photo's stored frame (the authors' files) and its displayed, EXIF-oriented frame
(orl's): the mapping agrees with the decoder for all 8 orientations, and import/export use it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orl.data.decode import decode_image
from orl.data.exif_boxes import image_frames, to_displayed, to_stored
from orl.data.sources import resolve_sources
from orl.discover.interop import export_authors_json, import_authors_json
from orl.discover.proposals import parse_authors_proposals
from orl.discover.store import CorrespondenceStore
from tests.data.test_shards import pack

STORED_BOX = [5, 3, 10, 6]  # x, y, w, h of the white patch, in stored pixels


def _photo(path: Path, orientation: int, size: tuple[int, int] = (40, 30)) -> Path:
    """A black image with a white patch at STORED_BOX, and the given EXIF orientation."""
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    x, y, w, h = STORED_BOX
    pixels[y : y + h, x : x + w] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes())
    return path


def _white_box(image: Image.Image) -> list[int]:
    ys, xs = np.nonzero(np.asarray(image)[:, :, 0] > 127)
    x, y = int(xs.min()), int(ys.min())
    return [x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_mapping_agrees_with_the_decoder(tmp_path: Path, orientation: int) -> None:
    path = _photo(tmp_path / "p.png", orientation)
    frame = image_frames(resolve_sources([tmp_path]))[0]
    assert frame == (orientation, (40, 30))
    displayed = to_displayed(np.array([STORED_BOX]), frame)
    assert displayed.tolist() == [_white_box(decode_image(path).image)]
    assert to_stored(displayed, frame).tolist() == [STORED_BOX]


def _authors_doc(names: list[str]) -> dict[str, object]:
    other = [0, 0, 8, 8]
    return {
        "images": {"file_name": names, "id": [0, 1]},
        "pseudo_annotations": {
            "image_id": [0, 1],
            "bbox": [[STORED_BOX, other], [STORED_BOX, other]],
            "knn_image_id": [[1], [0]],
            "knn_bbox_pair": [[[STORED_BOX + other]], [[other + other]]],
        },
    }


def test_imported_boxes_land_on_the_same_pixels_and_export_restores_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rotated = _photo(data / "a_rotated.png", 6)  # displayed 30 x 40
    _photo(data / "b_upright.png", 1)
    images = resolve_sources([data])
    src = tmp_path / "authors.json"
    src.write_text(json.dumps(_authors_doc(["a_rotated.png", "b_upright.png"])))
    import_authors_json(src, images, tmp_path / "store")
    store = CorrespondenceStore.open(tmp_path / "store")
    assert store.boxes(0)[0].tolist() == _white_box(decode_image(rotated).image)
    assert store.boxes(1)[0].tolist() == STORED_BOX  # orientation 1: unchanged
    assert store.pairs(0, 0)[0, :4].tolist() == store.boxes(0)[0].tolist()
    export_authors_json(store, images, tmp_path / "back.json")
    back = json.loads((tmp_path / "back.json").read_text())["pseudo_annotations"]
    assert back["bbox"] == _authors_doc([])["pseudo_annotations"]["bbox"]  # type: ignore[index]
    assert back["knn_bbox_pair"][0] == [[[*STORED_BOX, 0, 0, 8, 8]]]


@pytest.mark.parametrize("source", ["folder", "shards"])
def test_imported_proposals_land_on_the_same_pixels(tmp_path: Path, source: str) -> None:
    """Also for a photo inside a shard: its orientation is read from the member's bytes."""
    (tmp_path / "data").mkdir()
    rotated = _photo(tmp_path / "data" / "r.png", 8)
    (tmp_path / "props.json").write_text(json.dumps({"bbox": [[STORED_BOX]]}))
    data = str(tmp_path / "data")
    if source == "shards":
        data = pack(tmp_path / "data", tmp_path / "shards", per_shard=1)
    images = resolve_sources([data])
    assert images.in_shard(0) == (source == "shards")
    raw = parse_authors_proposals(tmp_path / "props.json", images)
    assert raw[0].tolist() == [_white_box(decode_image(rotated).image)]
