from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from tests.conftest import write_images
from tests.data.test_decode import write_zero_png
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

from orl.cli import main
from orl.distributed import DistInfo, init_distributed
from orl.evaluate.classification import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    Lighting,
    StateFile,
    image_folder,
    step_schedule,
    topk_correct,
    train_transform,
    with_sync_bn,
)
from orl.evaluate.features import center_crop_transform
from orl.evaluate.inputs import EvalInputError, random_weights
from orl.evaluate.linear import (
    LinearConfig,
    linear_config,
    linear_train_transform,
    milestones,
    train_linear,
)
from orl.evaluate.semi import SemiConfig, finetune, semi_config, subset_indices

STAMP = {"checkpoint": "random:resnet18:seed0"}
LINEAR = LinearConfig(epochs=4, batch_size=2, lr=0.01, layers=("feat4", "feat5"), workers=0)


def folders(image_folders: tuple[Path, Path]) -> tuple[ImageFolder, ImageFolder]:
    train, val = image_folders
    return image_folder(train, train_transform()), image_folder(val, center_crop_transform())


def test_presets_follow_appendix_b() -> None:
    assert [linear_config(p).epochs for p in ("imagenet", "places205", "inat18")] == [28, 14, 84]
    assert linear_config("imagenet").lr == 0.01 and linear_config("imagenet").weight_decay == 1e-4
    assert semi_config("1pct").weight_decay == 0.0 and semi_config("10pct").weight_decay == 1e-4


def test_schedules() -> None:
    assert milestones(28, "thirds") == [9, 19] and milestones(1, "thirds") == [1]
    lrs = step_schedule(0.01, 28, 2, milestones(28, "thirds"), 0.1)
    assert lrs[0] == 0.01 and lrs[2 * 9] == pytest.approx(0.001) and lrs[-1] == pytest.approx(1e-4)
    semi = step_schedule(1.0, 20, 1, [12, 16], 0.2)
    assert semi[11] == 1.0 and semi[12] == pytest.approx(0.2) and semi[16] == pytest.approx(0.04)


def test_linear_decays_three_times_at_the_authors_epochs() -> None:
    """x0.1 after epochs 8/16/24 of 28, 4/8/12 of 14, 24/48/72 of 84 (the authors' configs)."""
    assert milestones(28, "authors") == [8, 16, 24]
    assert milestones(14, "authors") == [4, 8, 12]
    assert milestones(84, "authors") == [24, 48, 72]
    assert LinearConfig().schedule == "authors" and LinearConfig().augment == "authors"
    lrs = step_schedule(0.01, 28, 1, milestones(28, "authors"), 0.1)
    assert lrs[7] == 0.01 and lrs[8] == pytest.approx(1e-3) and lrs[27] == pytest.approx(1e-5)


def test_lighting_adds_the_pca_colour_offset() -> None:
    """Lighting adds eigvec @ (alpha * eigval) to every pixel, alpha ~ N(0, 0.1^2)."""
    img = torch.rand(3, 4, 5)
    torch.manual_seed(3)
    out = Lighting(0.1)(img)
    torch.manual_seed(3)
    alpha = torch.randn(3) * 0.1
    offset = torch.tensor(IMAGENET_EIGVEC) @ (alpha * torch.tensor(IMAGENET_EIGVAL))
    torch.testing.assert_close(out - img, offset.view(3, 1, 1).expand(3, 4, 5))
    assert torch.equal(Lighting(0.0)(img), img)


def test_linear_training_input_is_the_authors_pipeline() -> None:
    names = [type(t).__name__ for t in linear_train_transform(LinearConfig()).transforms]
    assert names == [
        "RandomResizedCrop",
        "RandomHorizontalFlip",
        "ColorJitter",
        "ToTensor",
        "Lighting",
        "Normalize",
    ]
    jitter = linear_train_transform(LinearConfig()).transforms[2]
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        (0.6, 1.4),
        (0.6, 1.4),
        (0.6, 1.4),
        None,
    )
    plain = linear_train_transform(LinearConfig(augment="crop_flip")).transforms
    assert [type(t).__name__ for t in plain] == [
        "RandomResizedCrop",
        "RandomHorizontalFlip",
        "ToTensor",
        "Normalize",
    ]


def test_sync_bn_only_under_multi_gpu_ddp_and_when_enabled() -> None:
    def net() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))

    def has_sync(m: torch.nn.Module) -> bool:
        return any(isinstance(x, torch.nn.SyncBatchNorm) for x in m.modules())

    gpus = DistInfo(rank=0, local_rank=0, world_size=2, device=torch.device("cuda", 0))
    assert has_sync(with_sync_bn(net(), gpus, SemiConfig().sync_bn))
    assert not has_sync(with_sync_bn(net(), gpus, False))
    cpus = DistInfo(rank=0, local_rank=0, world_size=2, device=torch.device("cpu"))
    one = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cuda", 0))
    assert not has_sync(with_sync_bn(net(), cpus, True))
    assert not has_sync(with_sync_bn(net(), one, True))


def test_topk_correct() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.3]])
    assert topk_correct(logits, torch.tensor([1, 2]), (1, 2)) == [1, 2]


class KilledAfter(Dataset[tuple[torch.Tensor, int]]):
    """A data set that raises after `n` reads: a run killed in the middle of an epoch."""

    def __init__(self, data: Dataset[tuple[torch.Tensor, int]], n: int) -> None:
        self.data, self.left = data, n

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("killed")
        return self.data[i]


def test_linear_probe_learns_and_resumes_exactly(
    image_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = folders(image_folders)
    dist = init_distributed("cpu")
    net = random_weights("resnet18").build_backbone()
    first, second = (StateFile(tmp_path / f"{x}.state.pt", STAMP) for x in "ab")
    full = train_linear(net, train, val, 2, LINEAR, dist, first)
    losses = [h["loss"] for h in full["history"]]
    assert losses[-1] < losses[0]
    assert full["top1"]["feat5"] == 1.0  # red vs blue
    with pytest.raises(RuntimeError, match="killed"):  # dies in epoch 3 (8 images per epoch)
        train_linear(net, KilledAfter(train, 8 * 2 + 3), val, 2, LINEAR, dist, second)
    assert torch.load(second.path, weights_only=True)["epoch"] == 2
    resumed = train_linear(net, train, val, 2, LINEAR, dist, second, resume=True)
    assert resumed["history"] == full["history"]
    a = torch.load(first.path, weights_only=True)["model"]
    b = torch.load(second.path, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_without_state_is_an_input_error(
    image_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = folders(image_folders)
    net = random_weights("resnet18").build_backbone()
    state = StateFile(tmp_path / "x.state.pt", STAMP)
    with pytest.raises(EvalInputError, match="resume"):
        train_linear(net, train, val, 2, LINEAR, init_distributed("cpu"), state, resume=True)


def test_semi_finetunes_the_labelled_subset(
    image_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    train, val = folders(image_folders)
    listing = tmp_path / "subset.txt"
    listing.write_text(
        "red_0.JPEG\nred_1.JPEG\nred_2.JPEG\nblue_0.JPEG\nblue_1.JPEG\nblue_3.JPEG\n"
    )
    indices = subset_indices(train, listing)
    assert len(indices) == 6 and all(
        Path(train.samples[i][0]).name in listing.read_text() for i in indices
    )
    cfg = SemiConfig(epochs=4, batch_size=3, backbone_lr=0.001, head_lr_scale=1, workers=0)
    dist = init_distributed("cpu")
    out = finetune(
        random_weights("resnet18").build_backbone(),
        512,
        train,
        indices,
        val,
        2,
        cfg,
        dist,
        StateFile(tmp_path / "semi.state.pt", STAMP),
    )
    losses = [h["loss"] for h in out["history"]]
    assert losses[-1] < losses[0] and out["n_labelled"] == 6
    assert 0.0 <= out["top1"] <= out["top5"] == 1.0  # two classes: top-5 always hits
    assert (tmp_path / "semi.state.pt").is_file()


def test_subset_names_missing_from_train_folder(
    image_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    train, _ = folders(image_folders)
    listing = tmp_path / "subset.txt"
    listing.write_text("red_0.JPEG\nn01440764_10026.JPEG\n")
    with pytest.raises(EvalInputError, match="n01440764_10026"):
        subset_indices(train, listing)


def test_not_an_image_folder(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="ImageFolder"):
        image_folder(tmp_path / "missing", center_crop_transform())


def _linear(folders: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    train, val = folders
    return ["eval", "linear", "--train", str(train), "--val", str(val), "--out", str(out),
            "--device", "cpu", "--set", "epochs=1", "--set", "batch_size=4", "--set", "workers=0",
            "--set", "layers=[feat5]", *extra]  # fmt: skip


def test_resume_refuses_the_state_of_another_checkpoint_or_setting(
    image_folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r" / "byol.json"
    assert main([*_linear(image_folders, out), "--checkpoint", "random:resnet18"]) == 0
    state = out.with_name("byol.state.pt")
    before = state.read_bytes()
    capsys.readouterr()
    for extra, what in (
        (["--checkpoint", "random:resnet18", "--seed", "1"], "checkpoint differs"),
        (["--checkpoint", "random:resnet18", "--set", "lr=0.5"], "setting 'lr' differs"),
    ):
        assert main([*_linear(image_folders, out), *extra, "--resume"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(state) in err and what in err
    assert state.read_bytes() == before
    # another report in the same folder keeps its own state
    other = tmp_path / "r" / "orl.json"
    assert main([*_linear(image_folders, other), "--checkpoint", "random:resnet18"]) == 0
    assert {p.name for p in out.parent.iterdir()} >= {"byol.state.pt", "orl.state.pt"}
    assert (
        main([*_linear(image_folders, other), "--checkpoint", "random:resnet18", "--resume"]) == 0
    )


def test_image_folder_samples_load_through_the_robust_decoder(tmp_path: Path) -> None:
    """Training and validation images of linear and semi: a bomb is a one-line error naming it,
    and a photo stored sideways (EXIF orientation 6) is read upright, as training read it."""
    write_images(tmp_path / "a", 1, size=(20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    with Image.open(tmp_path / "a" / "img_000.jpg") as photo:
        photo.save(tmp_path / "a" / "sideways.jpg", exif=exif)
    bomb = write_zero_png(tmp_path / "a" / "zz_bomb.png", 13_400, 13_400)
    data = image_folder(tmp_path, transform=lambda image: image)
    assert [Path(p).name for p, _ in data.samples] == ["img_000.jpg", "sideways.jpg", "zz_bomb.png"]
    assert data[0][0].size == (30, 20) and data[1][0].size == (20, 30)
    with pytest.raises(EvalInputError, match=f"^{re.escape(str(bomb))}: unusable image"):
        data[2]
