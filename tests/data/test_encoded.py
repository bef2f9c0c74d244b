"""The gpu backend's data path on the CPU: bytes-only workers, device decode and augmentation,
odd files, exact resume, and the same views as the PIL backend sample by sample."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from orl.augment import AugmentConfig, global_view
from orl.config import load_config
from orl.data.decode import UnusableImage, decode_image
from orl.data.encoded import (
    EncodedTwoViewDataset,
    contain_size,
    device_views,
    load_encoded,
    plain_jpeg_size,
    render_views,
)
from orl.data.sampler import StepBatchSampler
from orl.data.sources import resolve_sources
from orl.data.views import Batch, TwoViewDataset, collate
from orl.train.config import PretrainConfig
from orl.train.loop import pretrain
from tests.data.test_decode import make_zoo
from tests.data.test_shards import pack
from tests.test_augment_tensor import scene

CPU = torch.device("cpu")
CFG = AugmentConfig(image_size=32, patch_size=16)


def photo_dir(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        scene(i, (60 + 4 * i, 48)).save(folder / f"p{i:02d}.jpg", quality=92)
    return folder


def pil_views(ds: TwoViewDataset, keys: list[tuple[int, int]]) -> Batch:
    return collate([ds[k] for k in keys])


def gpu_views(
    ds: torch.utils.data.Dataset, keys: list[tuple[int, int]]
) -> dict[str, list[torch.Tensor]]:  # type: ignore[type-arg]
    return render_views(collate([ds[k] for k in keys]), CPU, CFG)


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).abs().mean(dim=(1, 2, 3))


def test_only_plain_jpegs_go_to_the_device_decoder(tmp_path: Path) -> None:
    make_zoo(tmp_path)
    good = Image.open(tmp_path / "good.jpg")
    buf = io.BytesIO()
    good.save(buf, "JPEG", progressive=True)
    (tmp_path / "progressive.jpg").write_bytes(buf.getvalue())
    plain = {p.name for p in tmp_path.iterdir() if plain_jpeg_size(p.read_bytes()) is not None}
    assert plain == {"good.jpg", "gray.jpg"}
    assert plain_jpeg_size((tmp_path / "good.jpg").read_bytes()) == (40, 30)


def test_odd_files_are_decoded_on_the_worker_or_refused_like_the_pil_backend(
    tmp_path: Path,
) -> None:
    decodable = make_zoo(tmp_path)
    images = resolve_sources([tmp_path])
    for name, ok in decodable.items():
        path = str(tmp_path / name)
        index = [images.relpath(i) for i in range(len(images))].index(name)
        if not ok:
            with pytest.raises(UnusableImage):
                load_encoded(images, index, None)
            continue
        loaded = load_encoded(images, index, None)
        ref = decode_image(path)
        assert loaded.frame == ref.frame and loaded.size == ref.image.size
        if loaded.pixels is None:
            assert name in ("good.jpg", "gray.jpg")
        else:
            assert np.array_equal(loaded.pixels.permute(1, 2, 0).numpy(), np.asarray(ref.image))


def test_max_side_draws_on_the_pil_backends_decode_size(tmp_path: Path) -> None:
    photo_dir(tmp_path, 1)
    path = str(next(tmp_path.iterdir()))
    loaded = load_encoded(resolve_sources([tmp_path]), 0, 30)
    assert loaded.size == decode_image(path, 30).image.size == contain_size((60, 48), 30)
    assert loaded.frame == (60, 48)
    assert contain_size((48, 60), 30) == (24, 30) and contain_size((50, 50), 30) == (30, 30)


@pytest.mark.parametrize("max_side", [None, 40])
def test_device_views_equal_the_pil_backend_sample_by_sample(
    tmp_path: Path, max_side: int | None
) -> None:
    images = resolve_sources([photo_dir(tmp_path, 8)])
    crops = [(global_view(CFG, 1, 16), global_view(CFG, 2, 16))]
    pil = TwoViewDataset(images, global_view(CFG, 1), global_view(CFG, 2), 5, max_side, crops)
    gpu = EncodedTwoViewDataset(images, CFG, 5, max_side, crop_pairs=1)
    keys = [(3, i) for i in range(8)]
    ref, got = pil_views(pil, keys), gpu_views(gpu, keys)
    assert got.keys() == ref.views.keys() == {"image", "crops0"}
    for branch, views in got.items():
        for v, x in enumerate(views):
            assert x.shape == ref.views[branch][v].shape
            assert mean_abs(x, ref.views[branch][v]).max() < 3.0
    # another epoch draws other views
    other = gpu_views(gpu, [(4, i) for i in range(8)])
    assert mean_abs(other["image"][0], ref.views["image"][0]).median() > 10


def test_unusable_files_are_replaced_and_counted_as_on_the_pil_backend(tmp_path: Path) -> None:
    make_zoo(tmp_path)
    images = resolve_sources([tmp_path])
    pil = TwoViewDataset(images, global_view(CFG, 1), global_view(CFG, 2), 0)
    gpu = EncodedTwoViewDataset(images, CFG, 0)
    keys = [(0, i) for i in range(len(images))]
    ref, batch = pil_views(pil, keys), collate([gpu[k] for k in keys])
    assert batch.skipped == ref.skipped and len(batch.skipped) == 3
    assert torch.equal(batch.indices, ref.indices)
    views = render_views(batch, CPU, CFG)
    for v in range(2):
        assert mean_abs(views["image"][v], ref.views["image"][v]).max() < 3.0


def test_a_file_the_device_decoder_rejects_is_decoded_robustly_or_skipped(tmp_path: Path) -> None:
    images = resolve_sources([photo_dir(tmp_path, 4)])
    gpu = EncodedTwoViewDataset(images, CFG, 0)
    batch = collate([gpu[(0, i)] for i in range(4)])
    good = render_views(batch, CPU, CFG)
    # the bytes of image 1 go bad after the worker read the header: the whole batch decode fails
    broken = dataclasses.replace(batch.encoded[1], data=batch.encoded[1].data[:40].clone())
    again = render_views(
        dataclasses.replace(batch, encoded=[*batch.encoded[:1], broken, *batch.encoded[2:]]),
        CPU,
        CFG,
    )
    for v in range(2):
        assert torch.equal(again["image"][v], good["image"][v])  # re-read from the file
    Path(broken.path).write_bytes(b"")
    gone = dataclasses.replace(
        batch, encoded=[*batch.encoded[:1], broken, *batch.encoded[2:]], skipped=[]
    )
    out = render_views(gone, CPU, CFG)
    assert gone.skipped == [(broken.path, "empty file")]
    assert torch.equal(out["image"][0][0], good["image"][0][0])


def test_the_gpu_backend_reads_shards_as_it_reads_the_folder(tmp_path: Path) -> None:
    """The decoder zoo packed into shards (`orl shards`): the same images replaced, the same
    views, and the last-resort decode of a batch reads the image again from its shard."""
    make_zoo(tmp_path / "zoo")
    plain = resolve_sources([tmp_path / "zoo"])
    shards = resolve_sources([pack(tmp_path / "zoo", tmp_path / "shards", per_shard=5)])
    assert shards.in_shard(0) and shards.fingerprint == plain.fingerprint
    keys = [(0, i) for i in range(len(plain))]
    ref = collate([EncodedTwoViewDataset(plain, CFG, 0)[k] for k in keys])
    got = collate([EncodedTwoViewDataset(shards, CFG, 0)[k] for k in keys])
    assert torch.equal(got.indices, ref.indices) and len(got.skipped) == len(ref.skipped) == 3
    assert [im.pixels is None for im in got.encoded] == [im.pixels is None for im in ref.encoded]
    views = render_views(got, CPU, CFG)
    for v in range(2):
        assert torch.equal(views["image"][v], render_views(ref, CPU, CFG)["image"][v])
    j = next(j for j, im in enumerate(got.encoded) if im.pixels is None)
    broken = dataclasses.replace(got.encoded[j], data=got.encoded[j].data[:40].clone())
    again = render_views(
        dataclasses.replace(got, encoded=[*got.encoded[:j], broken, *got.encoded[j + 1 :]]),
        CPU,
        CFG,
    )
    assert torch.equal(again["image"][0], views["image"][0])


@pytest.mark.parametrize("workers", [0, 2])
def test_views_of_step_k_are_the_same_after_a_resume(tmp_path: Path, workers: int) -> None:
    """The sampler restarted at step k (what resume does) gives exactly the uninterrupted run's
    views: every draw is seeded by (seed, epoch, index), whatever the worker count."""
    images = resolve_sources([photo_dir(tmp_path, 12)])
    gpu = EncodedTwoViewDataset(images, CFG, seed=7)

    def steps(start: int, n: int) -> list[dict[str, list[torch.Tensor]]]:
        sampler = StepBatchSampler(len(images), 4, 3, seed=7, start_step=start)
        loader = DataLoader(gpu, batch_sampler=sampler, num_workers=workers, collate_fn=collate)
        out = []
        for batch in loader:
            out.append(device_views(batch, CPU, torch.contiguous_format, CFG))
            if len(out) == n:
                break
        return out

    uninterrupted = steps(0, 6)
    resumed = steps(4, 2)
    for a, b in zip(uninterrupted[4:], resumed, strict=True):
        for v in range(2):
            assert torch.equal(a["image"][v], b["image"][v])
    assert not torch.equal(uninterrupted[4]["image"][0], uninterrupted[1]["image"][0])


@pytest.mark.slow
def test_a_resumed_gpu_backend_run_ends_identical(tiny_config: Path, tmp_path: Path) -> None:
    settings = ["augment.backend=gpu", "deterministic=true", "save_every_steps=1", "epochs=1"]
    cfg = load_config(PretrainConfig, tiny_config, settings)
    pretrain(cfg, tmp_path / "whole")
    pretrain(cfg, tmp_path / "parts", max_steps=2)
    pretrain(cfg, tmp_path / "parts", resume=True)
    a = torch.load(tmp_path / "whole/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "parts/checkpoints/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    for part in ("online", "target"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), (part, k)
