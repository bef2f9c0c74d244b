"""The scene study's tables: aggregation over seeds and the generated Markdown block."""

from __future__ import annotations

import math

import pytest

from orl.pipeline.study_report import (
    BEGIN,
    END,
    bands_apart,
    corr_rows,
    eval_rows,
    fmt_mean_std,
    mean_std,
    per_class_rows,
    scenes_json,
    splice,
)


def _eval(scene_map: float, top1: float, acc: float) -> dict[str, object]:
    return {
        "scene_map": scene_map,
        "crop_top1": top1,
        "crop_mean_class_acc": acc,
        "scene_ap": {"bird": scene_map, "fruit": 1 - scene_map},
    }


RESULTS = {
    "runs": {
        "byol/0": {
            "train": {"wall_time_s": 60.0, "images_seen": 100},
            "eval": _eval(0.30, 0.5, 0.4),
        },
        "byol/1": {
            "train": {"wall_time_s": 180.0, "images_seen": 100},
            "eval": _eval(0.40, 0.7, 0.6),
        },
        "random/0": {"eval": _eval(0.2, 0.25, 0.2)},
    },
    "corr": {
        "orl/0": {"rois_on_object": 0.5, "wall_time_s": 10.0, "k": 10},
        "orl/1": {"rois_on_object": 0.7, "wall_time_s": 30.0, "k": 10},
    },
    "baselines": {"baselines": {"color_hist": _eval(0.21, 0.3, 0.3)}},
}


def test_mean_std_uses_the_sample_standard_deviation() -> None:
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == 2.0
    assert s == pytest.approx(1.0)  # population std would be 0.816
    assert mean_std([4.0]) == (4.0, 0.0)


def test_fmt_mean_std_scales_and_prints_a_single_seed_bare() -> None:
    assert fmt_mean_std([0.30, 0.40]) == f"35.0 ± {math.sqrt(0.005) * 100:.1f}"
    assert fmt_mean_std([0.123]) == "12.3"
    assert fmt_mean_std([]) == "-"


def test_eval_rows_order_methods_and_aggregate_seeds() -> None:
    head, rows = eval_rows(RESULTS)
    assert head[1] == "scene mAP"
    assert [r[0] for r in rows] == [
        "random init (1 seed)",
        "BYOL (2 seeds)",
        "colour histogram 6^3",
    ]
    byol = rows[1]
    assert byol[1] == "35.0 ± 7.1"  # mAP 0.30 and 0.40
    assert byol[2] == "60.0 ± 14.1"
    assert byol[4] == "2.0"  # median of 1 and 3 minutes
    assert byol[5] == "100"
    assert rows[0][4:] == ("0", "0")  # random init trains for nothing


def test_corr_rows_show_known_measures_in_percent_and_seconds_unscaled() -> None:
    head, rows = corr_rows(RESULTS)
    assert head == ("measure", "ORL (selective-search boxes)")
    assert rows == [
        ("kept RoIs covering an object (IoU >= 0.5)", "60.0 ± 14.1"),
        ("stage-2 wall time (s)", "20 ± 14"),
    ]


def test_per_class_rows_average_each_class() -> None:
    _, rows = per_class_rows(RESULTS)
    assert rows[0] == ("bird", "20.0", "35.0 ± 7.1")
    assert rows[1][0] == "fruit"


def test_splice_replaces_only_the_generated_block() -> None:
    doc = splice("# Title\n\nprose before\n", "table v1\n")
    assert doc.startswith("# Title\n\nprose before\n\n" + BEGIN)
    doc = doc + "\nprose after\n"
    again = splice(doc, "table v2\n")
    assert "table v1" not in again and "table v2" in again
    assert again.endswith(END + "\n\nprose after\n")
    assert again.count(BEGIN) == 1


def test_bands_apart_needs_two_seeds_and_non_overlapping_two_std_bands() -> None:
    assert bands_apart([0.30, 0.31, 0.32], [0.20, 0.21, 0.22])  # 31 - 2 > 21 + 2
    assert not bands_apart([0.30, 0.26, 0.34], [0.20, 0.21, 0.22])  # 30 - 8 < 21 + 2
    assert not bands_apart([0.30], [0.20])  # one seed: no spread to compare


def test_scenes_json_holds_mean_std_and_seed_count_in_percent() -> None:
    results = {
        "runs": {
            f"{row}/{seed}": {"eval": {"scene_map": value, "gray": {"scene_map": value / 2}}}
            for row, values in (("random", (0.2, 0.22)), ("byol", (0.3, 0.34)))
            for seed, value in enumerate(values)
        }
    }
    numbers = scenes_json(results, {"cfg": {"orl": {}, "lightly": {}}})
    assert numbers["protocols"]["scene_map"]["byol"] == {"mean": 32.0, "std": 2.83, "n": 2}
    assert numbers["protocols"]["scene_map_gray"]["random"]["mean"] == 10.5
    assert numbers["peer_parity"] == {"cfg": {"orl": {}, "lightly": {}}}
