"""The report's scene-benchmark section: present only when the pipeline ran a scene study."""

from __future__ import annotations

import json
from pathlib import Path

from orl.viz.report_document import Heading, Table, Text
from orl.viz.report_scenes import TITLE, scenes_blocks

RESULTS = {
    "config": {
        "scenes": {"train": 240, "test": 160, "test_seen": 90, "categories": "fast", "size": 128}
    },
    "runs": {
        "random/0": {"eval": {"scene_map": 0.2, "crop_top1": 0.1, "crop_mean_class_acc": 0.1}},
        "orl/0": {
            "train": {"wall_time_s": 120.0, "images_seen": 480},
            "eval": {"scene_map": 0.31, "crop_top1": 0.4, "crop_mean_class_acc": 0.35},
        },
        "supervised/0": {
            "train": {"wall_time_s": 60.0, "images_seen": 480},
            "eval": {"scene_map": 0.5, "crop_top1": 0.3, "crop_mean_class_acc": 0.3},
        },
    },
    "corr": {"orl/0": {"rois_on_object": 0.25, "pairs_same_category": 0.125}},
}


def test_no_section_without_a_scene_study(tmp_path: Path) -> None:
    assert scenes_blocks(tmp_path) == []


def test_section_lists_each_row_and_the_stage2_scores(tmp_path: Path) -> None:
    (tmp_path / "scenes_study").mkdir()
    (tmp_path / "scenes_study" / "results.json").write_text(json.dumps(RESULTS))
    blocks = scenes_blocks(tmp_path)
    assert blocks[0] == Heading(TITLE)
    text = next(b.text for b in blocks if isinstance(b, Text))
    assert "240 train / 160 test / 90 test_seen scenes" in text
    scores, headroom, stage2 = [b for b in blocks if isinstance(b, Table)]
    # scene mAP: floor 20, ceiling 50, headroom +30, ORL 11 points above the floor (one seed)
    assert headroom.rows[0][:5] == ("scene mAP", "20.0", "50.0", "+30.0", "+11.0")
    assert scores.rows[0][:2] == ("random init (1 seed)", "20.0")
    assert scores.rows[1] == (
        "ORL (selective-search boxes) (1 seed)",
        "31.0",
        "40.0",
        "35.0",
        "2.0",
        "480",
    )
    assert dict((r[0], r[1]) for r in stage2.rows) == {
        "kept RoIs covering an object (IoU >= 0.5)": "25.0",
        "pairs: same category": "12.5",
    }


def test_an_unreadable_results_file_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "scenes_study").mkdir()
    (tmp_path / "scenes_study" / "results.json").write_text("{not json")
    blocks = scenes_blocks(tmp_path)
    assert isinstance(blocks[1], Text) and blocks[1].missing


def test_a_study_that_could_not_fetch_its_stamps_shows_why(tmp_path: Path) -> None:
    (tmp_path / "scenes_study").mkdir()
    (tmp_path / "scenes_study" / "error.log").write_text(
        "Traceback ...\nFetchError: cannot fetch the object stamps (needs a working apt-get)\n"
    )
    text = scenes_blocks(tmp_path)[1]
    assert isinstance(text, Text) and text.missing
    assert text.text.startswith("not run: FetchError: cannot fetch the object stamps")
