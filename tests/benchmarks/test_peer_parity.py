"""`benchmarks/peer_parity.py`: the lightly side's numbers are orl's, and the comparison runs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from orl.config import load_config
from orl.data.scenes.build import build_scenes_from
from orl.losses import symmetric_byol_loss
from orl.train.config import PretrainConfig
from orl.train.schedules import lr_schedule, tau_schedule
from tests.data.scenes.conftest import CATEGORIES, synthetic_backgrounds, synthetic_stamps

pytest.importorskip("lightly")
ROOT = Path(__file__).resolve().parents[2]
PRESET = ROOT / "configs" / "scenes_train.yaml"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peer_parity", ROOT / "benchmarks/peer_parity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peer = _script()


@pytest.mark.parametrize("per_epoch", [False, True])
@pytest.mark.parametrize(("epochs", "steps_per_epoch", "warmup"), [(7, 37, 1.0), (3, 5, 0.5)])
def test_lightly_lr_and_tau_are_orls_numbers_exactly(
    per_epoch: bool, epochs: int, steps_per_epoch: int, warmup: float
) -> None:
    cfg = load_config(PretrainConfig, PRESET, [f"epochs={epochs}", f"optim.warmup_epochs={warmup}"])
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, cosine_per_epoch=per_epoch))
    total = epochs * steps_per_epoch
    o = cfg.optim
    expected = lr_schedule(o.lr * cfg.batch_size / 256, total, steps_per_epoch, o.warmup_epochs,
                           o.warmup_ratio, o.cosine_per_epoch)  # fmt: skip
    assert np.array_equal(peer.lightly_lr(cfg, steps_per_epoch), expected)
    assert np.array_equal(peer.lightly_tau(cfg, total), tau_schedule(cfg.model.tau, 1.0, total))


def test_lightly_loss_is_the_symmetric_byol_loss() -> None:
    from lightly.loss import NegativeCosineSimilarity

    g = torch.Generator().manual_seed(0)
    p0, p1, z0, z1 = (torch.randn(6, 16, generator=g) for _ in range(4))
    ours = symmetric_byol_loss([p0, p1], [z0, z1])
    theirs = peer.lightly_loss(NegativeCosineSimilarity(), p0, p1, z0, z1)
    torch.testing.assert_close(theirs, ours, rtol=1e-6, atol=1e-6)
    same = peer.lightly_loss(NegativeCosineSimilarity(), z1, z0, z0, z1)
    torch.testing.assert_close(same, torch.tensor(0.0), rtol=0, atol=1e-6)  # p = z: no loss


def test_lightly_views_follow_the_preset_and_refuse_what_lightly_lacks() -> None:
    cfg = load_config(PretrainConfig, PRESET, ["augment.view2_solarize_p=0.3"])
    view1, view2 = peer.lightly_transform(cfg.augment).transforms
    names = [type(t).__name__ for t in view2.transform.transforms]
    assert names.index("RandomResizedCrop") == 0 and "RandomSolarization" in names
    crop = view1.transform.transforms[0]
    assert crop.size == (64, 64) and crop.scale == (0.08, 1.0)
    solarize = view2.transform.transforms[names.index("RandomSolarization")]
    blur = view1.transform.transforms[names.index("GaussianBlur")]
    assert solarize.prob == 0.3 and blur.prob == 1.0 and blur.sigmas == (0.1, 2.0)
    bad = load_config(PretrainConfig, PRESET, ["augment.max_scale=0.9"]).augment
    with pytest.raises(ValueError, match="max_scale"):
        peer.lightly_transform(bad)


def test_agreement_within_two_pooled_standard_deviations() -> None:
    assert peer.agreement({"mean": 22.0, "std": 0.5}, {"mean": 21.2, "std": 0.3}) == "+0.8 (yes)"
    assert peer.agreement({"mean": 22.0, "std": 0.2}, {"mean": 21.2, "std": 0.2}) == "+0.8 (no)"
    assert peer.agreement({"mean": 22.0, "std": None}, {"mean": 21.0, "std": None}).endswith("n/a)")


@pytest.mark.slow
def test_both_sides_train_evaluate_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenes = tmp_path / "scenes"
    build_scenes_from(scenes, synthetic_stamps(), synthetic_backgrounds(), CATEGORIES, size=64,
                      n_train=16, n_test=12, seed=0, workers=1, log=lambda _: None)  # fmt: skip
    out = tmp_path / "parity"
    sets = ["epochs=1", "batch_size=8", "workers=0", "model.proj_hidden=32", "model.proj_dim=16",
            "model.pred_hidden=32", "augment.image_size=32"]  # fmt: skip
    argv = ["--config", str(PRESET), "--scenes", str(scenes), "--seeds", "0", "--out", str(out),
            "--threads", "1", "--crop-size", "32", "--costs", "1",
            *(f"--set={s}" for s in sets)]  # fmt: skip
    assert peer.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"orl", "lightly"}
    for impl in ("orl", "lightly"):
        assert {"scene_map", "crop_top1", "crop_mean_class_acc"} <= set(summary[impl])
        assert all(s["n"] == 1 and s["std"] is None for s in summary[impl].values())
        assert 0 <= summary[impl]["scene_map"]["mean"] <= 100
    assert json.loads((out / "lightly" / "seed0" / "train.json").read_text())["steps"] == 2
    assert "| lightly |" in capsys.readouterr().out
    stamp = (out / "orl" / "seed0" / "eval.json").stat().st_mtime_ns
    assert peer.main(argv) == 0  # every unit finished: nothing is redone
    assert (out / "orl" / "seed0" / "eval.json").stat().st_mtime_ns == stamp
    assert "skipped" in capsys.readouterr().out
    assert peer.main([*argv, "--set=epochs=2"]) == 2  # other settings, same folder
