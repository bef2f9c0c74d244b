"""NT-Xent over ranks: 2 gloo processes with DDP give the single-process loss and gradient of the
same global batch, and a gather that drops the other ranks' gradient terms would not."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from orl import distributed
from orl.distributed import _GatherWithGrad
from orl.losses import nt_xent
from orl.train.objectives import simclr_objective

pytestmark = pytest.mark.slow

B, WORLD, T = 3, 2, 0.1  # per-rank batch, ranks, temperature


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data() -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """A tiny projector and both views of the global batch of WORLD x B images."""
    g = torch.Generator().manual_seed(0)
    net = nn.Linear(5, 4)
    with torch.no_grad():
        net.weight.copy_(torch.randn(4, 5, generator=g))
        net.bias.copy_(torch.randn(4, generator=g))
    return net, torch.randn(WORLD * B, 5, generator=g), torch.randn(WORLD * B, 5, generator=g)


class _LocalOnlyGather(_GatherWithGrad):
    """The bug: backward returns this rank's slice of its own gradient, not the sum over ranks."""

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.chunk(dist.get_world_size())[dist.get_rank()].contiguous()


def _rank_main(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    results = {}
    for name in ("correct", "buggy"):
        net, x1, x2 = _data()
        model = DistributedDataParallel(net)
        views = {"image": [x1[rank * B : (rank + 1) * B], x2[rank * B : (rank + 1) * B]]}
        if name == "buggy":
            distributed.gather_with_grad = _LocalOnlyGather.apply  # type: ignore[assignment]
        loss, _ = simclr_objective(model, None, views, temperature=T)
        loss.backward()  # DDP averages the parameter gradients over the two ranks
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        results[name] = {
            "loss": mean_loss / WORLD,
            "weight": net.weight.grad.clone(),  # type: ignore[union-attr]
            "bias": net.bias.grad.clone(),  # type: ignore[union-attr]
        }
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_rank_gather_gives_the_single_process_loss_and_gradient(tmp_path: Path) -> None:
    mp.spawn(_rank_main, args=(_free_port(), str(tmp_path)), nprocs=WORLD)
    net, x1, x2 = _data()
    loss = nt_xent(net(x1), net(x2), T)  # one process, the global batch of 2 x 3 images
    loss.backward()
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["correct"]["loss"], loss.detach())
        torch.testing.assert_close(got["correct"]["weight"], net.weight.grad)
        torch.testing.assert_close(got["correct"]["bias"], net.bias.grad)
        # the comparison can tell: the same loss, but the gradient of the buggy gather is off
        torch.testing.assert_close(got["buggy"]["loss"], loss.detach())
        error = (got["buggy"]["weight"] - net.weight.grad).abs().max()
        assert error > 100 * (got["correct"]["weight"] - net.weight.grad).abs().max()
        assert error > 1e-2
