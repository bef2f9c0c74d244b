"""`orl pretrain` end to end through the command line on generated images."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from orl.checkpoint import CheckpointError
from orl.cli import main
from orl.config import load_config, to_dict
from orl.data.sources import resolve_sources
from orl.models.pretrained import load_pretrained
from orl.train.config import PretrainConfig
from orl.train.loop import pretrain
from orl.train.state import RESUME_SETTINGS, check_resumable
from tests.data.test_decode import make_zoo


def test_pretrain_writes_a_complete_run(tiny_config: Path, tmp_path: Path, image_dir: Path) -> None:
    zoo = make_zoo(image_dir / "zoo")  # 11 odd files next to 24 normal ones
    bad = sum(not ok for ok in zoo.values())
    run = tmp_path / "run"
    assert (
        main(
            [
                "pretrain",
                "--config",
                str(tiny_config),
                "--out",
                str(run),
                "--set",
                "save_every_epochs=1",
                "--set",
                "batch_size=7",
            ]
        )
        == 0
    )
    assert {p.name for p in (run / "checkpoints").iterdir()} == {
        "last.pt",
        "epoch_0001.pt",
        "epoch_0002.pt",
    }
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    # 35 images in batches of 7: 5 steps x 2 epochs, every file met once per epoch
    assert [r["step"] for r in lines] == list(range(1, 11))
    assert set(lines[0]) >= {"step", "epoch", "loss", "lr", "tau", "images_per_s"}
    assert lines[0]["tau"] == pytest.approx(0.99)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["images_seen"] == 70 and summary["skipped"] == bad == 3
    assert summary["final_loss"] == pytest.approx(lines[-1]["loss"])
    assert summary["data_fingerprint"] == resolve_sources([image_dir]).fingerprint
    assert len((run / "skipped.txt").read_text().splitlines()) == bad
    assert "arch: resnet18" in (run / "config.yaml").read_text()
    assert any((run / "tensorboard").iterdir())
    pre = load_pretrained(run / "checkpoints" / "last.pt")
    assert pre.step == 10 and pre.arch == "resnet18"
    assert pre.build_backbone()(torch.zeros(1, 3, 32, 32)).shape == (1, 512)


def test_existing_run_needs_resume_and_finished_run_resumes_to_nothing(
    tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert (
        main(["pretrain", "--config", str(tiny_config), "--out", str(run), "--set", "epochs=1"])
        == 0
    )
    before = (run / "checkpoints" / "last.pt").read_bytes()
    assert (
        main(["pretrain", "--config", str(tiny_config), "--out", str(run), "--set", "epochs=1"])
        == 2
    )
    assert "--resume" in capsys.readouterr().err
    assert (
        main(
            [
                "pretrain",
                "--config",
                str(tiny_config),
                "--out",
                str(run),
                "--set",
                "epochs=1",
                "--resume",
            ]
        )
        == 0
    )
    after = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert after["step"] == torch.load(__import__("io").BytesIO(before), weights_only=True)["step"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "optim.lrr=1"], "unknown key 'optim.lrr'"),
        (["--set", "data=/nonexistent/photos"], "/nonexistent/photos: data path not found"),
        (["--set", "batch_size=1000"], "larger than the data set"),
    ],
)
def test_config_errors_exit_2_with_one_line(
    tiny_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needle: str,
) -> None:
    code = main(["pretrain", "--config", str(tiny_config), "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1


def test_a_torn_last_metrics_line_is_dropped_on_resume(tiny_config: Path, tmp_path: Path) -> None:
    """A run killed while writing metrics.jsonl leaves half a line; resume drops it."""
    run = tmp_path / "run"
    cfg = load_config(PretrainConfig, tiny_config, [])
    pretrain(cfg, run, max_steps=2)  # stops after step 2, with last.pt at step 2
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "epoch": 1.0, "lo')
    assert main(["pretrain", "--config", str(tiny_config), "--out", str(run), "--resume"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, 7))


@pytest.mark.parametrize(
    ("first", "changed", "key"),
    [
        (["precision=fp32"], ["precision=bf16"], "precision"),
        (["method=byol_multicrop", "multicrop=2"], ["method=byol_multicrop"], "multicrop"),
    ],
)
def test_resume_refuses_another_precision_or_multicrop(
    tiny_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    first: list[str],
    changed: list[str],
    key: str,
) -> None:
    run = tmp_path / "run"
    args = ["pretrain", "--config", str(tiny_config), "--out", str(run), "--set", "epochs=1"]
    assert main([*args, *(x for s in first for x in ("--set", s))]) == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    assert main([*args, "--resume", *(x for s in changed for x in ("--set", s))]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"setting '{key}' differs" in err
    assert (run / "checkpoints" / "last.pt").read_bytes() == before


def test_a_checkpoint_from_before_the_gpu_settings_resumes_as_the_pil_backend(
    tiny_config: Path,
) -> None:
    """Runs recorded before `augment.backend` and `model.concat_views` existed were PIL-backend
    runs with per-view forwards: they resume as such, and not on the gpu backend."""
    cfg = load_config(PretrainConfig, tiny_config, [])
    old = to_dict(cfg)
    del old["augment"]["backend"], old["model"]["concat_views"]
    ckpt = {"data_fingerprint": "f", "config": old}
    check_resumable(ckpt, cfg, "f", RESUME_SETTINGS)
    gpu = load_config(PretrainConfig, tiny_config, ["augment.backend=gpu"])
    with pytest.raises(CheckpointError, match="setting 'augment' differs"):
        check_resumable(ckpt, gpu, "f", RESUME_SETTINGS)


def test_torn_checkpoint_gives_a_clear_message(
    tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 torn")
    code = main(["pretrain", "--config", str(tiny_config), "--out", str(run), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "unreadable checkpoint" in err and "Traceback" not in err


def test_bench_prints_images_per_second_last(
    tiny_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["bench", "train", "--config", str(tiny_config), "--warmup", "1", "--steps", "2"]) == 0
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("train images/s: ") and float(last.split(": ")[1]) > 0


DISCOVER_TINY = ["k=3", "knn_resize=40", "knn_crop=32", "roi_size=32", "min_size=16"]
DISCOVER_TINY += ["ss_max_side=64", "proposal_workers=1", "batch_size=16", "device=cpu"]


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("byol", []),
        ("simclr", ["optim.optimizer=lars", "optim.weight_decay=0.000001"]),
        ("mocov2", ["contrastive.queue_size=12", "model.tau=0.999"]),
    ],
)
def test_each_stage1_method_trains_through_the_cli_and_feeds_discover(
    tiny_config: Path, tmp_path: Path, image_dir: Path, method: str, settings: list[str]
) -> None:
    run = tmp_path / "run"
    sets = [x for s in [f"method={method}", "epochs=1", *settings] for x in ("--set", s)]
    assert main(["pretrain", "--config", str(tiny_config), "--out", str(run), *sets]) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]  # 24 images in batches of 8
    assert all(math.isfinite(r["loss"]) for r in lines)
    assert ("tau" in lines[0]) == (method != "simclr")  # SimCLR has no EMA network
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ("queue" in ckpt) == (method == "mocov2") and ("target" in ckpt) == (method != "simclr")
    pre = load_pretrained(run / "checkpoints" / "last.pt")
    assert pre.method == method and pre.proj_dim == 16

    corr = tmp_path / "corr"
    discover_sets = [x for s in DISCOVER_TINY for x in ("--set", s)]
    args = ["discover", "--checkpoint", str(run / "checkpoints" / "last.pt")]
    assert main([*args, "--data", str(image_dir), "--out", str(corr), *discover_sets]) == 0
    from orl.discover.store import CorrespondenceStore

    store = CorrespondenceStore.open(corr)
    assert store.num_images == 24 and store.neighbours(0).shape == (3,)
    assert store.meta["checkpoint_sha256"] == pre.sha256


def test_a_data_set_with_no_decodable_image_is_refused_before_training(
    tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"x{i}.jpg").write_bytes(b"not a jpeg")
    run = tmp_path / "run"
    argv = ["pretrain", "--config", str(tiny_config), "--out", str(run), "--set", f"data={bad}"]
    assert main([*argv, "--set", "batch_size=2"]) == 2  # a batch fits: the images are the culprit
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "none of the 3 images" in err and str(bad) in err
    assert not run.exists()
