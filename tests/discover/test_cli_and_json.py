"""`orl corr`, `orl discover` and `orl viz pairs` through the parser: JSON round trip, import,
inspect (errors raise here; `orl.cli.main` turns them into one line)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from discover_helpers import assert_same_store, store_arrays

from orl.cli import build_parser
from orl.discover.store import CorrespondenceStore, StoreMismatch


def run(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return int(args.func(args))


def test_json_export_import_round_trip_is_exact(
    tmp_path: Path, baseline: Path, photos: Path
) -> None:
    first = tmp_path / "a.json"
    assert run("corr", "export-json", str(baseline), str(first)) == 0
    doc = json.loads(first.read_text())
    st = CorrespondenceStore.open(baseline)
    ann = doc["pseudo_annotations"]
    assert doc["images"]["file_name"][0] == "s0.jpg"
    assert ann["knn_image_id"][2] == st.neighbours(2).tolist()
    assert ann["knn_bbox_pair"][1][2] == st.pairs(1, 2).tolist()
    assert run("corr", "import-json", str(first), "--data", str(photos), str(tmp_path / "b")) == 0
    assert_same_store(baseline, tmp_path / "b")
    second = tmp_path / "b.json"
    run("corr", "export-json", str(tmp_path / "b"), str(second), "--data", str(photos))
    assert second.read_bytes() == first.read_bytes()


def test_authors_json_without_our_extensions_imports(
    tmp_path: Path, baseline: Path, photos: Path
) -> None:
    run("corr", "export-json", str(baseline), str(tmp_path / "a.json"))
    doc = json.loads((tmp_path / "a.json").read_text())
    doc["info"] = {}
    del doc["pseudo_annotations"]["knn_bbox_pair_sim"]
    (tmp_path / "authors.json").write_text(json.dumps(doc))
    run(
        "corr",
        "import-json",
        str(tmp_path / "authors.json"),
        "--data",
        str(photos),
        str(tmp_path / "c"),
    )
    ours, theirs = store_arrays(baseline), store_arrays(tmp_path / "c")
    for name in ("boxes", "box_offsets", "neighbours", "pair_index", "pair_offsets"):
        np.testing.assert_array_equal(ours[name], theirs[name])
    assert np.isnan(theirs["pair_sims"]).all()


def test_import_refuses_another_data_set(tmp_path: Path, baseline: Path, photos: Path) -> None:
    run("corr", "export-json", str(baseline), str(tmp_path / "a.json"))
    other = tmp_path / "other"
    other.mkdir()
    for name in ("s1.jpg", "s0.jpg"):
        (other / name).write_bytes((photos / name).read_bytes())
    with pytest.raises(StoreMismatch, match="--data"):
        run(
            "corr",
            "import-json",
            str(tmp_path / "a.json"),
            "--data",
            str(other),
            str(tmp_path / "x"),
        )
    with pytest.raises(StoreMismatch):
        run("viz", "pairs", str(baseline), "--data", str(other), "--out", str(tmp_path / "p.png"))


def test_import_proposals_then_discover_uses_them(
    tmp_path: Path, baseline: Path, photos: Path, checkpoint: Path
) -> None:
    st = CorrespondenceStore.open(baseline)
    raw = {"bbox": [[[0, 0, 60, 50], [1, 1, 60, 50], [30, 20, 40, 40]]] * st.num_images}
    (tmp_path / "props.json").write_text(json.dumps(raw))
    props = tmp_path / "props"
    assert (
        run(
            "corr",
            "import-proposals",
            str(tmp_path / "props.json"),
            "--data",
            str(photos),
            str(props),
        )
        == 0
    )
    out = tmp_path / "corr"
    sets = [
        "--set",
        "k=3",
        "--set",
        "knn_resize=64",
        "--set",
        "knn_crop=56",
        "--set",
        "roi_size=48",
        "--set",
        "min_size=16",
        "--set",
        "device=cpu",
        "--set",
        f"proposal_file={props}",
    ]
    run(
        "discover",
        "--checkpoint",
        str(checkpoint),
        "--data",
        str(photos),
        "--out",
        str(out),
        "--boxes",
        "file",
        *sets,
    )
    result = CorrespondenceStore.open(out)
    assert result.boxes(0).tolist() == [[0, 0, 60, 50], [30, 20, 40, 40]]  # IoU filter applied
    assert result.meta["settings"]["boxes"] == "file"


def test_inspect_and_viz(
    tmp_path: Path, baseline: Path, photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("corr", "inspect", str(baseline), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 9 and summary["skipped_images"] == 1
    assert summary["skipped_examples"] == ["s8_corrupt.jpg"]
    assert len(summary["pair_similarity"]) == 7 and summary["pair_similarity"][-1] <= 1.0001
    run("corr", "inspect", str(baseline))
    assert "RoI forwards" in capsys.readouterr().out
    png = tmp_path / "pairs.png"
    assert (
        run("viz", "pairs", str(baseline), "--data", str(photos), "--out", str(png), "--count", "4")
        == 0
    )
    from PIL import Image

    with Image.open(png) as img:
        assert img.width > 200 and img.height > 100


def test_an_interrupted_export_keeps_the_previous_file_and_leaves_no_temporary(
    tmp_path: Path, baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "a.json"
    assert run("corr", "export-json", str(baseline), str(out)) == 0
    before = out.read_bytes()

    def interrupted(self: CorrespondenceStore, i: int, j: int) -> np.ndarray:
        raise KeyboardInterrupt

    monkeypatch.setattr(CorrespondenceStore, "pair_sims", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run("corr", "export-json", str(baseline), str(out))
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
