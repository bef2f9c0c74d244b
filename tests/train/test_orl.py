"""Stage 3 (ORL) and the multi-crop baseline: loss composition, gradients, configs, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orl.cli import main
from orl.config import ConfigError, load_config
from orl.data.sources import resolve_sources
from orl.losses import symmetric_byol_loss, weighted_branch_loss
from orl.models.byol import Encoder, OnlineNetwork
from orl.train.config import PretrainConfig
from orl.train.methods import build_method
from orl.train.orl import branch_weights
from tests.train.test_orl_views import quadrant_images, quadrant_store

BASE = {"data": ["unused"], "epochs": 1, "arch": "resnet18", "batch_size": 4}


def _views(n: int = 4, size: int = 32) -> dict[str, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return {
        b: [torch.randn(n, 3, size, size, generator=g) for _ in range(2)]
        for b in ("image", "intra", "inter")
    }


def test_orl_loss_is_the_weighted_sum_of_three_byol_losses() -> None:
    g = torch.Generator().manual_seed(1)
    preds = {
        b: [torch.randn(5, 8, generator=g) for _ in range(2)] for b in ("image", "intra", "inter")
    }
    targs = {b: [torch.randn(5, 8, generator=g) for _ in range(2)] for b in preds}
    weights = {"image": 1.0, "intra": 0.5, "inter": 2.0}
    total, terms = weighted_branch_loss(preds, targs, weights)
    expected = sum(w * symmetric_byol_loss(preds[b], targs[b]) for b, w in weights.items())
    torch.testing.assert_close(total, expected)
    for b in weights:
        torch.testing.assert_close(terms[b], symmetric_byol_loss(preds[b], targs[b]))


@pytest.mark.parametrize("branch", ["image", "intra", "inter"])
def test_each_predictor_gets_gradients_only_from_its_own_branch(branch: str) -> None:
    torch.manual_seed(0)
    online = OnlineNetwork(Encoder("resnet18", 32, 16), ["image", "intra", "inter"], 32)
    out = online(_views())
    targets = {b: [torch.randn_like(p) for p in ps] for b, ps in out.items()}
    symmetric_byol_loss(out[branch], targets[branch]).backward()
    for name, pred in online.predictors.items():
        grads = [p.grad for p in pred.parameters()]
        if name == branch:
            assert all(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None for g in grads)
    assert online.encoder.backbone.conv1.weight.grad is not None  # the shared backbone learns


@pytest.mark.parametrize(
    ("overrides", "branches"),
    [
        ([], ["image", "intra", "inter"]),
        (["orl.inter_weight=0"], ["image", "intra"]),  # Table 5a, intra-RoI only
        (["orl.intra_weight=0"], ["image", "inter"]),  # Table 5a, inter-RoI only
    ],
)
def test_ablation_settings_build_only_the_used_branches(
    overrides: list[str], branches: list[str]
) -> None:
    cfg = load_config(PretrainConfig, None, ["method=orl", *overrides], base=BASE)
    assert list(branch_weights(cfg.orl)) == branches


def test_multicrop_baseline_gives_two_global_and_four_small_views(image_dir: Path) -> None:
    cfg = load_config(
        PretrainConfig,
        None,
        [
            "method=byol_multicrop",
            "augment.image_size=32",
            "augment.patch_size=16",
            f"data={image_dir}",
        ],
        base=BASE,
    )
    parts = build_method(cfg, resolve_sources(cfg.data))
    sample = parts.dataset[(0, 0)]
    shapes = {b: [tuple(v.shape) for v in vs] for b, vs in sample.views.items()}
    assert shapes == {
        "image": [(3, 32, 32)] * 2,
        "crops0": [(3, 16, 16)] * 2,
        "crops1": [(3, 16, 16)] * 2,
    }
    assert parts.branches == ("image", "crops0", "crops1")
    assert list(parts.online.predictors) == ["image", "crops0", "crops1"]


def test_orl_end_to_end_through_the_cli(tiny_config: Path, tmp_path: Path) -> None:
    folder = quadrant_images(tmp_path / "q", 16)
    corr = quadrant_store(folder, tmp_path / "corr")
    run = tmp_path / "orl"
    code = main(
        [
            "pretrain",
            "--config",
            str(tiny_config),
            "--out",
            str(run),
            "--corr",
            str(corr),
            "--set",
            "method=orl",
            "--set",
            f"data={folder}",
        ]
    )
    assert code == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4  # 16 images // 8 x 2 epochs
    for r in rows:
        assert r["loss"] == pytest.approx(
            r["loss_image"] + r["loss_intra"] + r["loss_inter"], rel=1e-5
        )
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert {k.split(".")[1] for k in state["online"] if k.startswith("predictors.")} == {
        "image",
        "intra",
        "inter",
    }


@pytest.mark.parametrize("zero", ["image", "intra", "inter"])
def test_a_branch_weighted_zero_is_left_out_end_to_end(
    tiny_config: Path, tmp_path: Path, zero: str
) -> None:
    folder = quadrant_images(tmp_path / "q", 16)
    corr = quadrant_store(folder, tmp_path / "corr")
    run = tmp_path / "orl"
    sets = ["method=orl", f"data={folder}", "epochs=1", f"orl.{zero}_weight=0"]
    args = ["pretrain", "--config", str(tiny_config), "--out", str(run), "--corr", str(corr)]
    assert main([*args, *(x for s in sets for x in ("--set", s))]) == 0
    kept = {"image", "intra", "inter"} - {zero}
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert {k for k in rows[0] if k.startswith("loss_")} == {f"loss_{b}" for b in kept}
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert {k.split(".")[1] for k in state["online"] if k.startswith("predictors.")} == kept


@pytest.mark.parametrize(
    "weights",
    [
        ["orl.image_weight=0", "orl.intra_weight=0", "orl.inter_weight=0"],
        ["orl.intra_weight=-1"],
    ],
)
def test_branch_weights_are_checked_where_they_are_parsed(weights: list[str]) -> None:
    with pytest.raises(ConfigError, match="at least one must be positive"):
        load_config(PretrainConfig, None, ["method=orl", *weights], base=BASE)


def test_orl_refuses_a_store_of_another_data_set(
    tiny_config: Path, tmp_path: Path, image_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corr = quadrant_store(quadrant_images(tmp_path / "q", 8), tmp_path / "corr")
    code = main(
        [
            "pretrain",
            "--config",
            str(tiny_config),
            "--out",
            str(tmp_path / "r"),
            "--corr",
            str(corr),
            "--set",
            "method=orl",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "store was built on data set" in err and len(err.splitlines()) == 1
