"""`orl pretrain` end to end through the command line on generated images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orl.cli import main
from orl.data.sources import resolve_sources
from orl.models.pretrained import load_pretrained
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
