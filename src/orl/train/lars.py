"""LARS (You et al. 2017) as SimCLR uses it: the optimizer of the SimCLR baseline (Tables 1-4).

Per parameter tensor w with gradient g, in SimCLR's form (the lr inside the momentum buffer):

    d = g + wd * w
    r = eta * ||w|| / ||d||   if ||w|| > 0 and ||d|| > 0, else 1     (the trust ratio)
    v = momentum * v + lr * r * d
    w = w - v

A parameter group with `adapt=False` skips both the weight decay and the trust ratio (r = 1): plain
SGD with momentum. SimCLR excludes biases and batch-norm parameters this way; `lars_param_groups`
builds the two groups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


def lars_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights (decay + trust ratio) and biases/BN parameters (neither).

    A tensor with at most one dimension is a bias or a BN scale/shift in every network here
    (Linear and Conv weights have two or more), the rule SimCLR's code applies by name.
    """
    adapted: list[nn.Parameter] = []
    excluded: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (excluded if p.ndim <= 1 else adapted).append(p)
    return [
        {"params": adapted, "weight_decay": weight_decay, "adapt": True},
        {"params": excluded, "weight_decay": 0.0, "adapt": False},
    ]


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling with momentum; every step is a handful of fused
    multi-tensor calls per group and never reads a value back to the host."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError("LARS: lr, momentum and weight_decay >= 0, trust_coefficient > 0")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "adapt": True,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            wd = group["weight_decay"]
            d = torch._foreach_add(grads, params, alpha=wd) if wd != 0 else grads
            if group["adapt"]:
                w_norm = torch.stack(torch._foreach_norm(params))
                d_norm = torch.stack(torch._foreach_norm(d))
                # torch.where, not `if`: the ratio stays on the device (no sync per parameter)
                ratio = torch.where(
                    (w_norm > 0) & (d_norm > 0),
                    group["trust_coefficient"] * w_norm / d_norm,
                    torch.ones_like(w_norm),
                )
                d = torch._foreach_mul(d, list((ratio * group["lr"]).unbind()))
            else:
                d = torch._foreach_mul(d, group["lr"])
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, d)
            torch._foreach_sub_(params, bufs)
        return loss
