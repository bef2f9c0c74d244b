from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import write_images
from tests.data.test_decode import write_zero_png

from orl.evaluate.features import (
    POOLS,
    cached_features,
    center_crop_transform,
    extract_features,
    l2_normalize,
    parse_layers,
    pool_maps,
    svm_transform,
)
from orl.evaluate.inputs import EvalInputError, random_weights
from orl.models.backbone import build_backbone, stage_features


def test_resnet50_depth_dimensions_at_224() -> None:
    net, _ = build_backbone("resnet50")
    with torch.no_grad():
        pooled = pool_maps(stage_features(net.eval(), torch.zeros(1, 3, 224, 224)), list(POOLS))
    dims = {name: t.flatten(1).shape[1] for name, t in pooled.items()}
    assert dims == {
        "feat1": 9216, "feat2": 9216, "feat3": 8192, "feat4": 9216, "feat5": 8192, "avgpool": 2048
    }  # fmt: skip


def test_parse_layers() -> None:
    assert parse_layers("feat5") == ["feat5"]
    assert parse_layers("all") == ["feat1", "feat2", "feat3", "feat4", "feat5"]
    with pytest.raises(ValueError, match="layer4"):
        parse_layers("feat5,layer4")


def test_svm_transform_squashes_to_224() -> None:
    from PIL import Image

    out = svm_transform()(Image.new("RGB", (600, 300)))
    assert out.shape == (3, 224, 224)


def test_extraction_equals_a_direct_forward(voc_root: Path) -> None:
    paths = sorted((voc_root / "JPEGImages").glob("*.jpg"))[:3]
    net = random_weights("resnet18").build_backbone()
    feats = extract_features(net, paths, ["feat5"], svm_transform(), batch_size=2)
    from PIL import Image

    batch = torch.stack([svm_transform()(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        direct = pool_maps(stage_features(net, batch), ["feat5"])["feat5"].flatten(1).numpy()
    assert feats["feat5"].shape == (3, 512 * 4)
    assert np.allclose(feats["feat5"], direct, atol=1e-5)


def test_cache_extracts_once_and_leaves_no_temp_files(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def fake(paths: Sequence[Path], layers: Sequence[str]) -> dict[str, np.ndarray]:
        calls.append(list(layers))
        return {n: np.full((len(paths), 4), i, np.float32) for i, n in enumerate(layers)}

    paths = [Path("a.jpg"), Path("b.jpg")]
    first = cached_features(tmp_path, "ckpt", "voc", paths, ["feat4", "feat5"], "t", fake)
    again = cached_features(tmp_path, "ckpt", "voc", paths, ["feat5", "feat3"], "t", fake)
    assert calls == [["feat4", "feat5"], ["feat3"]]  # feat5 came from disk the second time
    assert np.array_equal(first["feat5"], again["feat5"])
    cached_features(tmp_path, "other-ckpt", "voc", paths, ["feat5"], "t", fake)
    cached_features(tmp_path, "ckpt", "voc", paths[:1], ["feat5"], "t", fake)
    assert len(calls) == 4  # a different checkpoint or image list is a different entry
    assert not list(tmp_path.glob(".*tmp")) and len(list(tmp_path.glob("*.npy"))) == 5


def test_l2_normalize_rows() -> None:
    x = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(np.linalg.norm(x[0]), 1.0, atol=1e-5) and np.allclose(x[1], 0.0)


def test_an_unusable_image_stops_extraction_with_one_line_naming_it(tmp_path: Path) -> None:
    """A decompression bomb among the images: refused by the decoder, named, never decoded."""
    photo = write_images(tmp_path, 1) / "img_000.jpg"
    bomb = write_zero_png(tmp_path / "bomb.png", 13_400, 13_400)  # 180 M pixels, 30 kB
    net = random_weights("resnet18").build_backbone()
    with pytest.raises(EvalInputError) as err:
        extract_features(net, [photo, bomb], ["avgpool"], center_crop_transform(), batch_size=2)
    message = str(err.value)
    assert message.startswith(f"{bomb}: unusable image") and "decompression bomb" in message
    assert "\n" not in message
