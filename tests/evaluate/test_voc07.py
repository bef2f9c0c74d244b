from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score

from orl.evaluate.inputs import EvalInputError
from orl.evaluate.svm import COSTS, cv_average_precision, make_svm, train_labels
from orl.evaluate.voc07 import (
    VOC_CLASSES,
    SplitFeatures,
    evaluate_voc07,
    format_voc07,
    parse_annotation,
    read_split,
)


def planted(voc_root: Path, shuffle_labels: bool = False) -> SplitFeatures:
    """Stub extractor: each image maps to (its positive classes as one-hot) + noise."""
    rng = np.random.default_rng(0)
    vectors: dict[Path, np.ndarray] = {}
    for split in ("trainval", "test"):
        s = read_split(voc_root, split)
        labels = rng.permutation(s.labels) if shuffle_labels else s.labels
        for path, row in zip(s.paths, labels, strict=True):
            vectors[path] = (row == 1).astype(np.float32) + 0.05 * rng.random(20, dtype=np.float32)

    def features(split: str, paths: Sequence[Path], layers: Sequence[str]) -> dict[str, np.ndarray]:
        return {name: np.stack([vectors[p] for p in paths]) for name in layers}

    return features


def test_the_19_costs_of_the_benchmark() -> None:
    assert len(COSTS) == 19 and COSTS[:3] == (1.0, 10.0, 100.0)
    assert COSTS[3] == 0.5**4 and COSTS[-1] == 0.5**19


def test_svm_settings_match_goyal() -> None:
    p = make_svm(0.5).get_params()
    assert p["class_weight"] == {1: 2, -1: 1} and p["loss"] == "squared_hinge"
    assert p["dual"] is True and p["tol"] == 1e-4 and p["max_iter"] == 2000 and p["C"] == 0.5


def test_annotation_labels_positive_difficult_absent(voc_root: Path) -> None:
    labels = parse_annotation(voc_root / "Annotations" / "000015.xml")
    # image 15: class 15 present, (7*15+3) % 20 = 8 present, difficult class (15+10) % 20 = 5
    assert labels[15] == 1 and labels[8] == 1 and labels[5] == 0
    assert (labels == -1).sum() == 17


def test_difficult_only_is_negative_for_training() -> None:
    assert train_labels(np.array([1, 0, -1])).tolist() == [1, -1, -1]


def test_cv_matches_sklearn_cross_val_score() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((30, 8))
    y = np.where(x[:, 0] + 0.3 * rng.random(30) > 0.7, 1, -1)
    expected = cross_val_score(make_svm(1.0), x, y, cv=3, scoring="average_precision").mean()
    assert cv_average_precision(x, y, 1.0, 3) == pytest.approx(expected)


def test_planted_separable_features_give_map_one(voc_root: Path) -> None:
    report = evaluate_voc07(voc_root, planted(voc_root), ["feat5"], COSTS, jobs=1)
    result = report["layers"]["feat5"]
    assert result["mAP"] == pytest.approx(1.0)
    assert set(result["cost"].values()) <= set(COSTS)
    assert report["n_trainval"] == 60 and report["n_test"] == 40
    assert "mAP" in format_voc07(report) and "tvmonitor" in format_voc07(report)


def test_random_labels_are_near_chance(voc_root: Path) -> None:
    report = evaluate_voc07(voc_root, planted(voc_root, shuffle_labels=True), ["feat5"], (1.0,))
    assert report["layers"]["feat5"]["mAP"] < 0.5


def test_missing_image_set_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    with pytest.raises(EvalInputError, match=r"trainval\.txt"):
        read_split(tmp_path, "trainval")


def test_missing_voc_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="VOC2007"):
        read_split(tmp_path / "nowhere", "test")


def test_all_twenty_classes_are_evaluated(voc_root: Path) -> None:
    report = evaluate_voc07(voc_root, planted(voc_root), ["feat4", "feat5"], (1.0,))
    assert set(report["layers"]) == {"feat4", "feat5"}
    assert list(report["layers"]["feat4"]["ap"]) == list(VOC_CLASSES)


def test_parallel_jobs_give_the_same_report(voc_root: Path) -> None:
    one = evaluate_voc07(voc_root, planted(voc_root, True), ["feat5"], (0.1, 1.0), jobs=1)
    two = evaluate_voc07(voc_root, planted(voc_root, True), ["feat5"], (0.1, 1.0), jobs=2)
    assert one["layers"]["feat5"]["ap"] == two["layers"]["feat5"]["ap"]
    assert one["layers"]["feat5"]["cost"] == two["layers"]["feat5"]["cost"]
