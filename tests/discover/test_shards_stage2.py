"""Stage 2 reads tar shards: packed from the photo folder in its order, the shards give the very
store the folder gives (images keyed by their sample names, same proposals, pairs, fingerprint)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from discover_helpers import store_arrays, tiny_config

from orl.cli import main
from orl.discover.pipeline import discover


def test_discover_on_shards_equals_discover_on_the_folder(
    tmp_path: Path, checkpoint: Path, photos: Path, baseline: Path
) -> None:
    argv = ["shards", str(photos), "--out", str(tmp_path / "shards"), "--per-shard", "4"]
    assert main([*argv, "--no-shuffle"]) == 0
    pattern = str(tmp_path / "shards" / "{000000..000002}.tar")
    out = discover(tiny_config(), checkpoint, [pattern], tmp_path / "corr", resume=False)
    left, right = store_arrays(baseline), store_arrays(out)
    for name in left:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)
    meta_a, meta_b = (json.loads((p / "meta.json").read_text()) for p in (baseline, out))
    assert meta_b["sources"] == [pattern]
    assert {k: v for k, v in meta_a.items() if k != "sources"} == {
        k: v for k, v in meta_b.items() if k != "sources"
    }
    # the corrupt photo is skipped by its sample name, as in the folder
    assert meta_b["skipped_images"] == ["s8_corrupt.jpg"]
