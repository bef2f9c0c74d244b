"""`model.concat_views`: one forward per branch with per-view batch norm equals one forward per
view (outputs, loss, gradients, BN running statistics), also with `model.bn_splits`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orl.config import ConfigError, load_config
from orl.data.sources import resolve_sources
from orl.losses import symmetric_byol_loss
from orl.train.config import PretrainConfig
from orl.train.methods import MethodParts, build_method
from orl.train.run import build_optimizer
from tests.train.test_orl_views import quadrant_images, quadrant_store

BASE = {"data": ["unused"], "epochs": 1, "arch": "resnet18", "method": "byol", "batch_size": 8}
SMALL = ["model.proj_hidden=32", "model.proj_dim=16", "model.pred_hidden=32"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Images and a correspondence store, so that `build_method` can build BYOL and ORL."""
    root = tmp_path_factory.mktemp("concat")
    folder = quadrant_images(root / "images", 4)
    return folder, quadrant_store(folder, root / "corr")


def _config(method: str, concat: bool, splits: int, data: tuple[Path, Path]) -> PretrainConfig:
    settings = [*SMALL, f"method={method}", f"model.bn_splits={splits}", "model.sync_bn=false"]
    settings += [f"model.concat_views={str(concat).lower()}", f"data={data[0]}"]
    settings.append(f"orl.corr={data[1]}")
    return load_config(PretrainConfig, None, settings, base=BASE)


def _parts(cfg: PretrainConfig) -> MethodParts:
    return build_method(cfg, resolve_sources(cfg.data))


def _views(branches: list[str]) -> dict[str, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return {b: [torch.randn(8, 3, 32, 32, generator=g) * 2 + 1 for _ in range(2)] for b in branches}


@pytest.mark.parametrize(("method", "splits"), [("byol", 1), ("orl", 1), ("byol", 2)])
def test_concatenated_views_equal_per_view_forwards(
    method: str, splits: int, data: tuple[Path, Path]
) -> None:
    torch.manual_seed(0)
    per_view = _parts(_config(method, False, splits, data))
    joint = _parts(_config(method, True, splits, data))
    joint.online.load_state_dict(per_view.online.state_dict())
    assert joint.target is not None
    joint.target.load_state_dict(joint.online.encoder.state_dict())
    weights = per_view.branches
    views = _views(list(weights))
    results = []
    for parts in (per_view, joint):
        net, target = parts.online, parts.target
        assert target is not None
        loss, terms = parts.objective(net, target, views)
        loss.backward()
        grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
        results.append((loss, terms, grads, net.state_dict(), target.state_dict()))
    (loss_a, terms_a, grads_a, state_a, tstate_a), (loss_b, terms_b, grads_b, state_b, tstate_b) = (
        results
    )
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    for b in weights:
        torch.testing.assert_close(terms_b[b], terms_a[b], rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 50
    for name, g in grads_a.items():  # float summation order differs: compare relative norms
        assert (grads_b[name] - g).norm() <= 1e-4 * g.norm() + 1e-7, name
    for a, b in ((state_a, state_b), (tstate_a, tstate_b)):  # running stats: view 1, then view 2
        for name, v in a.items():
            torch.testing.assert_close(b[name], v, rtol=1e-5, atol=1e-6, msg=name)


def test_concatenating_without_per_view_statistics_would_differ(data: tuple[Path, Path]) -> None:
    """The comparison above can tell: BN over both views at once gives another loss."""
    torch.manual_seed(0)
    parts = _parts(_config("byol", False, 1, data))
    online, target = parts.online, parts.target
    assert target is not None
    views = _views(["image"])
    per_view, _ = parts.objective(online, target, views)
    joined = {"image": [torch.cat(views["image"])]}
    pred, targ = online(joined)["image"][0], target(joined["image"][0])
    naive = symmetric_byol_loss(list(pred.chunk(2)), list(targ.chunk(2)))
    assert (naive - per_view).abs() > 1e-3


def test_concat_views_is_refused_where_it_cannot_keep_per_view_statistics() -> None:
    with pytest.raises((ConfigError, ValueError), match="sync_bn"):
        load_config(PretrainConfig, None, ["model.concat_views=true"], base=BASE)
    with pytest.raises((ConfigError, ValueError), match="byol"):
        load_config(
            PretrainConfig,
            None,
            ["model.concat_views=true", "model.sync_bn=false", "method=simclr"],
            base=BASE,
        )


def test_sgd_is_fused_only_for_gpu_parameters(data: tuple[Path, Path]) -> None:
    cfg = _config("byol", False, 1, data)
    opt = build_optimizer(_parts(cfg).online, cfg)
    assert not opt.param_groups[0]["fused"]
