import torch
from torch import nn

from orl.models.backbone import build_backbone
from orl.models.byol import Encoder, OnlineNetwork, ema_update, make_target
from orl.models.heads import mlp_head


def test_projector_and_predictor_have_the_paper_shapes() -> None:
    enc = Encoder("resnet50")
    lin0, bn, relu, lin1 = enc.projector
    assert (lin0.in_features, lin0.out_features, lin0.bias is not None) == (2048, 4096, True)
    assert isinstance(bn, nn.BatchNorm1d) and isinstance(relu, nn.ReLU)
    assert (lin1.in_features, lin1.out_features, lin1.bias) == (4096, 256, None)
    online = OnlineNetwork(enc, ["image", "intra", "inter"])
    for pred in online.predictors.values():
        assert (pred[0].in_features, pred[0].out_features, pred[3].out_features) == (256, 4096, 256)
    # three predictors that do not share weights
    ids = {id(p[0].weight) for p in online.predictors.values()}
    assert len(ids) == 3


def test_backbone_outputs_pooled_features() -> None:
    net, width = build_backbone("resnet18")
    assert width == 512
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 512)


def test_online_forward_runs_each_view_separately() -> None:
    torch.manual_seed(0)
    enc = Encoder("resnet18", 32, 16)
    online = OnlineNetwork(enc, ["image"], 32).train()
    a, b = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    out = online({"image": [a, b]})["image"]
    # per-view BN: the prediction for view a must not depend on view b
    out2 = online({"image": [a, torch.randn(4, 3, 32, 32)]})["image"]
    torch.testing.assert_close(out[0], out2[0])
    assert out[0].shape == (4, 16)


def test_target_starts_as_a_copy_and_ema_updates_parameters_only() -> None:
    online = mlp_head(3, 4, 2)
    target = make_target(online)
    for p, q in zip(online.parameters(), target.parameters(), strict=True):
        assert torch.equal(p, q) and not q.requires_grad
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    online[1].running_mean.fill_(5.0)
    before = [q.clone() for q in target.parameters()]
    ema_update(target, online, tau=0.9)
    for q0, p, q in zip(before, online.parameters(), target.parameters(), strict=True):
        torch.testing.assert_close(q, 0.9 * q0 + 0.1 * p)
    # buffers (BN running statistics) are not averaged
    assert torch.equal(target[1].running_mean, torch.zeros(4))


def test_ema_hand_computed_value() -> None:
    online, target = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    online.weight.data.fill_(2.0)
    target.weight.data.fill_(1.0)
    ema_update(target, online, tau=0.99)
    assert target.weight.item() == torch.tensor(0.99 * 1.0 + 0.01 * 2.0).item()
