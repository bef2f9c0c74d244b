"""WebDataset tar shards: brace patterns, the index, safety, the epoch order, the rank and worker
split, the resume position, and pre-training from shards."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from orl.cli import main
from orl.data.sampler import StepBatchSampler
from orl.data.shards import expand_braces, index_shard, sample_key
from orl.data.sources import DataSourceError, resolve_sources
from tests.conftest import write_images


def pack(folder: Path, out: Path, per_shard: int, shuffle: bool = False) -> str:
    """`orl shards` on `folder`; returns the brace pattern it prints."""
    argv = ["shards", str(folder), "--out", str(out), "--per-shard", str(per_shard)]
    assert main([*argv, *([] if shuffle else ["--no-shuffle"])]) == 0
    last = len(list(out.glob("*.tar"))) - 1
    return str(out / f"{{000000..{last:06d}}}.tar")


def test_brace_expansion() -> None:
    assert expand_braces("s/{000..002}.tar") == ["s/000.tar", "s/001.tar", "s/002.tar"]
    two = ["a-8.tar", "a-9.tar", "a-10.tar", "b-8.tar", "b-9.tar", "b-10.tar"]
    assert expand_braces("{a,b}-{8..10}.tar") == two
    assert expand_braces("plain.tar") == ["plain.tar"]
    assert sample_key("dir/img_001.input.jpg") == "dir/img_001" and sample_key("x.png") == "x"


def test_shards_read_back_as_the_folder_they_were_packed_from(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "imgs", 10)
    (folder / "sub").mkdir()
    (folder / "img_000.jpg").rename(folder / "sub" / "a.jpg")
    pattern = pack(folder, tmp_path / "shards", per_shard=4)
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == [
        "000000.tar",
        "000001.tar",
        "000002.tar",
    ]
    plain, shards = resolve_sources([folder]), resolve_sources([pattern])
    assert [shards.relpath(i) for i in range(10)] == [plain.relpath(i) for i in range(10)]
    assert shards.fingerprint == plain.fingerprint  # same names, same sizes, same order
    assert shards.shard_starts().tolist() == [0, 4, 8]  # type: ignore[union-attr]
    assert plain.shard_starts() is None
    for i in range(10):
        a, b = plain.decode(i), shards.decode(i)
        assert a.frame == b.frame and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    again = tmp_path / "again"  # same files, same bytes: shards are reproducible
    pack(folder, again, per_shard=4)
    assert (again / "000001.tar").read_bytes() == (tmp_path / "shards" / "000001.tar").read_bytes()


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _member(
    name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.type = (len(data) if kind == tarfile.REGTYPE else 0), kind
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info, data


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([_member("../escape.jpg")], "not a plain relative path"),
        ([_member("/abs/olute.jpg")], "not a plain relative path"),
    ],
)
def test_hostile_member_names_are_refused(tmp_path: Path, members: list, match: str) -> None:  # type: ignore[type-arg]
    shard = _tar(tmp_path / "bad.tar", members)
    with pytest.raises(DataSourceError, match=match) as info:
        resolve_sources([str(shard)])
    assert "\n" not in str(info.value) and "bad.tar" in str(info.value)


def test_links_and_other_members_are_skipped_and_sizes_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = _tar(
        tmp_path / "mixed.tar",
        [
            _member("a.jpg", b"jpeg bytes"),
            _member("a.cls", b"3"),  # a label of sample a: not an image
            _member("link.jpg", kind=tarfile.SYMTYPE),
            _member("b.png", b"png bytes"),
        ],
    )
    assert [s.name for s in index_shard(str(shard))] == ["a.jpg", "b.png"]
    monkeypatch.setattr("orl.data.shards.MAX_MEMBER_BYTES", 9)
    with pytest.raises(DataSourceError, match="more than an image may"):
        resolve_sources([str(shard)])


def test_compressed_or_missing_shards_are_one_line_errors(tmp_path: Path) -> None:
    gz = _tar(tmp_path / "c.tar", [_member("a.jpg")], mode="w:gz")
    with pytest.raises(DataSourceError, match="not a readable uncompressed tar"):
        resolve_sources([str(gz)])
    with pytest.raises(DataSourceError, match="shard not found"):
        resolve_sources([str(tmp_path / "{0..1}.tar")])


STARTS = np.array([0, 8, 16, 24])  # 4 shards of 8 samples


def test_each_step_reads_one_shard_and_each_epoch_every_sample_once() -> None:
    sampler = StepBatchSampler(32, 8, 3, seed=1, world_size=2, rank=0, shard_starts=STARTS)
    other = StepBatchSampler(32, 8, 3, seed=1, world_size=2, rank=1, shard_starts=STARTS)
    steps = [a + b for a, b in zip(sampler, other, strict=True)]  # the global batch of each step
    for epoch in range(3):
        block = steps[4 * epoch : 4 * epoch + 4]
        assert all(e == epoch for step in block for e, _ in step)
        indices = [i for step in block for _, i in step]
        assert sorted(indices) == list(range(32))  # every sample once per epoch
        assert all(len({i // 8 for _, i in step}) == 1 for step in block)  # one shard per step
    orders = [[i for _, i in s[0:1]] for s in steps]
    assert orders[:4] != orders[4:8]  # a new order every epoch


def test_resuming_at_a_step_continues_the_same_stream() -> None:
    full = list(StepBatchSampler(32, 8, 3, seed=1, shard_starts=STARTS))
    for start in (0, 3, 5, 11):
        tail = list(StepBatchSampler(32, 8, 3, seed=1, start_step=start, shard_starts=STARTS))
        assert tail == full[start:]


class WhoReads(Dataset[tuple[int, int]]):
    def __len__(self) -> int:
        return 32

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, int]:
        info = get_worker_info()
        return key[1], info.id if info is not None else -1


def test_loader_workers_split_the_steps_and_read_every_sample_once() -> None:
    sampler = StepBatchSampler(32, 8, 1, seed=2, shard_starts=STARTS)
    loader = DataLoader(WhoReads(), batch_sampler=sampler, num_workers=2)
    seen = [(int(i), int(w)) for idx, who in loader for i, w in zip(idx, who, strict=True)]
    assert sorted(i for i, _ in seen) == list(range(32))
    by_worker = {w: {i // 8 for i, ww in seen if ww == w} for w in (0, 1)}
    assert len(by_worker[0]) == len(by_worker[1]) == 2  # each worker reads whole shards here


@pytest.mark.slow
def test_pretraining_from_shards_resumes_exactly(
    tiny_config: Path, tmp_path: Path, image_dir: Path
) -> None:
    from orl.config import load_config
    from orl.train.config import PretrainConfig
    from orl.train.loop import pretrain

    pattern = pack(image_dir, tmp_path / "shards", per_shard=8, shuffle=True)
    cfg = load_config(PretrainConfig, tiny_config, [f"data={pattern}", "deterministic=true"])
    pretrain(cfg, tmp_path / "reference")
    pretrain(cfg, tmp_path / "resumed", max_steps=4)  # stopped mid-epoch (3 steps per epoch)
    pretrain(cfg, tmp_path / "resumed", resume=True)
    a, b = (
        torch.load(tmp_path / n / "checkpoints" / "last.pt", weights_only=True)
        for n in ("reference", "resumed")
    )
    assert a["step"] == b["step"] == 6
    assert all(torch.equal(a["online"][k], b["online"][k]) for k in a["online"])
