"""The projection heads of SimCLR and MoCo v2, and loading their checkpoints for stage 2."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from orl.checkpoint import FORMAT, VERSION, atomic_save
from orl.models.byol import Encoder
from orl.models.contrastive import ContrastiveNetwork
from orl.models.pretrained import load_pretrained


def test_simclr_head_is_linear_bn_relu_linear_bn_without_biases() -> None:
    lin0, bn0, relu, lin1, bn1 = Encoder("resnet50", 2048, 128, "simclr").projector
    assert (lin0.in_features, lin0.out_features, lin0.bias) == (2048, 2048, None)
    assert isinstance(bn0, nn.BatchNorm1d) and isinstance(relu, nn.ReLU)
    assert (lin1.in_features, lin1.out_features, lin1.bias) == (2048, 128, None)
    assert isinstance(bn1, nn.BatchNorm1d) and bn1.num_features == 128


def test_mocov2_head_is_linear_relu_linear_with_biases_and_no_bn() -> None:
    head = Encoder("resnet50", 2048, 128, "mocov2").projector
    lin0, relu, lin1 = head
    assert (lin0.in_features, lin0.out_features, lin0.bias is not None) == (2048, 2048, True)
    assert isinstance(relu, nn.ReLU)
    assert (lin1.in_features, lin1.out_features, lin1.bias is not None) == (2048, 128, True)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in head.modules())


def test_orl_and_multicrop_keep_the_byol_projector() -> None:
    for method in ("byol", "orl", "byol_multicrop"):
        assert len(Encoder("resnet18", 32, 16, method).projector) == 4


def _save(path: Path, online: nn.Module, method: str) -> None:
    config = {"arch": "resnet18", "method": method, "model": {"proj_hidden": 32, "proj_dim": 16}}
    state = {"format": FORMAT, "version": VERSION, "config": config}
    atomic_save({**state, "online": online.state_dict()}, path)


def test_stage2_encoder_of_a_contrastive_checkpoint_is_the_trained_head(tmp_path: Path) -> None:
    x = torch.randn(2, 3, 32, 32)
    for method in ("simclr", "mocov2"):
        torch.manual_seed(0)
        online = ContrastiveNetwork(Encoder("resnet18", 32, 16, method))
        online.train()
        online(torch.randn(4, 3, 32, 32))  # move the BN running statistics off their start
        _save(tmp_path / f"{method}.pt", online, method)
        pre = load_pretrained(tmp_path / f"{method}.pt")
        assert pre.method == method
        with torch.no_grad():
            torch.testing.assert_close(pre.build_encoder()(x), online.eval()(x))
        assert set(pre.backbone) == set(online.encoder.backbone.state_dict())


def test_checkpoints_without_a_method_load_as_byol(tmp_path: Path) -> None:
    from tests.checkpoints import save_tiny_checkpoint

    save_tiny_checkpoint(tmp_path / "old.pt")
    pre = load_pretrained(tmp_path / "old.pt")
    assert pre.method == "byol" and len(pre.build_encoder().projector) == 4
