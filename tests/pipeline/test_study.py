"""The scene study end to end (`benchmarks/scenes_study.py --quick`), on synthetic stamps."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from orl.data.scenes.build import build_scenes_from
from orl.pipeline.study_config import resolve_study
from orl.pipeline.study_report import BEGIN
from tests.data.scenes.conftest import CATEGORIES, synthetic_backgrounds, synthetic_stamps

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "seeds=[3]",
    "baselines=true",  # the quick preset skips them; run them here
    "train.overrides.epochs=1",
    "train.overrides.batch_size=8",
    "train.overrides.workers=0",
    "train.overrides.model.proj_hidden=32",
    "train.overrides.model.proj_dim=16",
    "train.overrides.model.pred_hidden=32",
    "train.overrides.augment.image_size=32",
    "train.overrides.augment.patch_size=16",
    "discover.overrides.k=2",
    "discover.overrides.knn_resize=36",
    "discover.overrides.knn_crop=32",
    "discover.overrides.roi_size=16",
    "discover.overrides.min_size=8",
    "discover.overrides.proposal_workers=1",
    "discover.overrides.device=cpu",
    "eval.image_size=64",
    "eval.crop_size=32",
    "eval.jobs=1",
]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "scenes_study", ROOT / "benchmarks/scenes_study.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_preset_resolves_every_stage() -> None:
    study = resolve_study(Path("scenes_study_quick"), [])  # bundled presets by name
    assert (
        study.train.method == "byol" and study.discover.roi_size == study.train.augment.patch_size
    )
    assert set(study.cfg.methods) == {
        "random", "byol", "byol_multicrop", "orl", "orl_gt", "supervised", "supervised_instances"
    }  # fmt: skip
    full = resolve_study(Path("scenes_study"), [])
    # The quick study is the full one made smaller: same pre-training apart from the epochs.
    assert dataclasses.replace(study.train, epochs=full.train.epochs) == full.train
    assert study.discover == full.discover and study.cfg.eval == full.cfg.eval
    assert study.cfg.scenes.style == full.cfg.scenes.style and study.cfg.scenes.test_seen > 0


def test_quick_study_runs_every_row_and_resumes_without_recomputing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenes = tmp_path / "scenes"
    build_scenes_from(
        scenes,
        synthetic_stamps(),
        synthetic_backgrounds(),
        CATEGORIES,
        size=64,
        n_train=24,
        n_test=16,
        n_test_seen=12,
        log=lambda _: None,
    )
    out, md = tmp_path / "study", tmp_path / "scenes.md"
    md.write_text("# Scenes\n\nprose kept\n")
    argv = ["--quick", "--out", str(out), "--markdown", str(md), "--set", f"scenes_dir={scenes}"]
    argv += [x for o in TINY for x in ("--set", o)]
    assert _script().main(argv) == 0

    results = json.loads((out / "results.json").read_text())
    assert sorted(results["runs"]) == [
        "byol/3",
        "byol_multicrop/3",
        "orl/3",
        "orl_gt/3",
        "random/3",
        "supervised/3",
        "supervised_instances/3",
    ]
    for name, row in results["runs"].items():
        assert 0.0 <= row["eval"]["scene_map"] <= 1.0, name
        assert 0.0 <= row["eval"]["instance_r1"] <= 1.0, name  # the test_seen split's protocol
        assert 0.0 <= row["eval"]["gray"]["scene_map"] <= 1.0, name
        if not name.startswith("random"):
            assert row["train"]["images_seen"] == 24 - 24 % 8, name
    # ORL with the true boxes keeps only object boxes: every RoI covers an object.
    gt = results["corr"]["orl_gt/3"]
    assert gt["rois_on_object"] == 1.0
    assert set(results["baselines"]["baselines"]) == {
        "color_hist", "raw_pixels", "color_hist_gray", "raw_pixels_gray"
    }  # fmt: skip
    text = md.read_text()
    assert text.startswith("# Scenes\n\nprose kept\n") and BEGIN in text
    assert "| BYOL (1 seed) |" in text and "colour histogram" in text
    assert "| floor: random | ceiling: supervised | headroom |" in text
    numbers = json.loads(md.with_suffix(".json").read_text())
    byol = numbers["protocols"]["instance_r1"]["byol"]
    assert byol["n"] == 1 and byol["std"] is None
    assert byol["mean"] == round(100 * results["runs"]["byol/3"]["eval"]["instance_r1"], 2)
    assert set(numbers["protocols"]["scene_map_gray"]) >= {"random", "supervised", "orl_gt"}
    assert numbers["peer_parity"] == {}

    capsys.readouterr()
    assert _script().main(argv) == 0  # a second run reuses every finished unit
    log = capsys.readouterr().out
    assert "running" not in log and log.count("up to date") >= 10
