"""Two-process DDP (gloo, CPU) equals one process with the same global batch.

SyncBatchNorm runs only on GPUs, so on the CPU each rank normalises its own half of the batch; the
single-process reference reproduces that with `model.bn_splits=2`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from orl.config import load_config
from orl.train.config import PretrainConfig
from orl.train.loop import pretrain
from tests.train.test_orl_views import quadrant_images, quadrant_store

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SETTINGS = ["epochs=1", "device=cpu", "batch_size=12", "augment.image_size=64"]


def _rank_main(rank: int, port: int, config: str, out: str, extra: list[str]) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
    )
    torch.set_num_threads(1)
    pretrain(load_config(PretrainConfig, Path(config), [*SETTINGS, *extra]), Path(out))


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference over trained tensors (BN running statistics excluded: DDP
    keeps rank 0's, the split reference averages its slices)."""
    return max(
        (a[k] - v).abs().max().item()
        for k, v in b.items()
        if v.is_floating_point() and "running" not in k
    )


@pytest.mark.parametrize("method", ["byol", "orl"])
def test_two_process_ddp_matches_single_process(
    tiny_config: Path, tmp_path: Path, method: str
) -> None:
    extra = [f"method={method}"]
    if method == "orl":
        folder = quadrant_images(tmp_path / "q", 24)
        corr = quadrant_store(folder, tmp_path / "corr")
        extra += [f"data={folder}", f"orl.corr={corr}"]
    args = (_free_port(), str(tiny_config), str(tmp_path / "ddp"), extra)
    mp.spawn(_rank_main, args=args, nprocs=2)
    for name, splits in (("split", 2), ("naive", 1)):
        settings = [*SETTINGS, *extra, f"model.bn_splits={splits}"]
        cfg = load_config(PretrainConfig, tiny_config, settings)
        pretrain(cfg, tmp_path / name)
    ckpt = {
        name: torch.load(tmp_path / name / "checkpoints/last.pt", weights_only=True)
        for name in ("ddp", "split", "naive")
    }
    assert ckpt["ddp"]["step"] == ckpt["split"]["step"] == 2  # 24 images // 12
    for part in ("online", "target"):
        same = _max_difference(ckpt["ddp"][part], ckpt["split"][part])
        other = _max_difference(ckpt["ddp"][part], ckpt["naive"][part])
        assert same < 5e-5, part
        # the comparison can tell: BN over the whole batch in one process is clearly different
        assert other > 100 * same, part
