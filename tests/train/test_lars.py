"""LARS: the trust ratio on hand-computed tensors, the excluded groups, no host reads per step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn

from orl.config import load_config
from orl.data.sources import resolve_sources
from orl.models.split_bn import SplitBatchNorm
from orl.train.config import PretrainConfig
from orl.train.lars import LARS, lars_param_groups
from orl.train.methods import build_method
from orl.train.run import build_optimizer
from tests.test_config import CONFIGS


def test_trust_ratio_and_momentum_on_hand_computed_tensors() -> None:
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
    opt = LARS([{"params": [w], "weight_decay": 0.1, "adapt": True}], lr=2.0, momentum=0.9)
    w.grad = torch.tensor([[0.3, 0.4]])
    opt.step()
    # d = g + 0.1 w = (0.6, 0.8), ||d|| = 1; r = 0.001 * 5 / 1; v = 2 * r * d = (0.006, 0.008)
    torch.testing.assert_close(w.data, torch.tensor([[2.994, 3.992]]))
    w.grad = torch.tensor([[0.3, 0.4]])
    opt.step()
    # d = (0.3 + 0.2994, 0.4 + 0.3992); r = 0.001 ||w|| / ||d||; v = 0.9 v + 2 r d
    d = torch.tensor([0.5994, 0.7992])
    r = 0.001 * torch.tensor([2.994, 3.992]).norm() / d.norm()
    v = 0.9 * torch.tensor([0.006, 0.008]) + 2.0 * r * d
    torch.testing.assert_close(w.data, torch.tensor([[2.994, 3.992]]) - v)


def test_excluded_group_is_plain_sgd_with_momentum() -> None:
    b = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = LARS([{"params": [b], "weight_decay": 0.0, "adapt": False}], lr=2.0, momentum=0.9)
    b.grad = torch.tensor([0.5, 0.25])
    opt.step()
    torch.testing.assert_close(b.data, torch.tensor([0.0, -2.5]))  # no trust ratio, no decay
    b.grad = torch.tensor([0.5, 0.25])
    opt.step()
    torch.testing.assert_close(b.data, torch.tensor([0.0, -2.5]) - torch.tensor([1.9, 0.95]))


def test_zero_weights_or_gradients_use_ratio_one() -> None:
    w = nn.Parameter(torch.zeros(1, 2))
    opt = LARS([w], lr=0.5, momentum=0.0, weight_decay=0.0)
    w.grad = torch.tensor([[1.0, 2.0]])
    opt.step()  # ||w|| = 0: r = 1
    torch.testing.assert_close(w.data, torch.tensor([[-0.5, -1.0]]))
    w.grad = torch.zeros(1, 2)
    opt.step()  # ||d|| = 0: r = 1, nothing moves
    torch.testing.assert_close(w.data, torch.tensor([[-0.5, -1.0]]))


def test_biases_and_batch_norm_are_excluded_from_decay_and_adaptation() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    adapted, excluded = lars_param_groups(net, 1e-6)
    assert {id(p) for p in adapted["params"]} == {id(net[0].weight), id(net[3].weight)}
    assert {id(p) for p in excluded["params"]} == {
        id(net[0].bias),
        id(net[1].weight),
        id(net[1].bias),
        id(net[3].bias),
    }
    assert (adapted["weight_decay"], adapted["adapt"]) == (1e-6, True)
    assert (excluded["weight_decay"], excluded["adapt"]) == (0.0, False)


def test_simclr_preset_builds_lars_with_every_bn_parameter_excluded(image_dir: Path) -> None:
    settings = ["model.bn_splits=2", f"data={image_dir}"]
    cfg = load_config(PretrainConfig, CONFIGS / "demo_simclr.yaml", settings)
    online = build_method(cfg, resolve_sources(cfg.data)).online
    opt = build_optimizer(online, cfg)
    assert isinstance(opt, LARS)
    adapted, excluded = ({id(p) for p in g["params"]} for g in opt.param_groups)
    bn = nn.BatchNorm1d | nn.BatchNorm2d | SplitBatchNorm
    for module in online.modules():
        for p in module.parameters(recurse=False):
            if isinstance(module, bn) or p is getattr(module, "bias", None):
                assert id(p) in excluded
            else:
                assert id(p) in adapted
    assert opt.param_groups[0]["weight_decay"] == 1e-6
    assert opt.param_groups[1]["weight_decay"] == 0.0


@contextmanager
def _no_host_reads() -> Iterator[None]:
    """Fail on any tensor-to-Python conversion: on a GPU each would be a device sync."""

    def refuse(*_: object) -> None:
        raise AssertionError("a tensor value was read on the host")

    names = ("item", "tolist", "__bool__", "__float__", "__int__")
    saved = {name: getattr(torch.Tensor, name) for name in names}
    for name in names:
        setattr(torch.Tensor, name, refuse)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)


def test_step_reads_no_tensor_value_on_the_host() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    opt = LARS(lars_param_groups(net, 1e-6), lr=0.1)
    net(torch.randn(5, 3)).sum().backward()
    with _no_host_reads():
        opt.step()
        opt.step()
    # the guard itself works
    with _no_host_reads(), pytest.raises(AssertionError, match="read on the host"):
        bool(torch.ones(1) > 0)
