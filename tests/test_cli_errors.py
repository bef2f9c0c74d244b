"""Expected failures end in one line on stderr and exit code 2, with no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from orl import cli
from orl.cli import main


def error_lines(stderr: str) -> list[str]:
    """stderr without progress bars (tqdm writes them there too)."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if line and "%|" not in line]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_non_finite_loss_is_one_line(
    tiny_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from orl.train import methods

    def diverged(*args: object, **kwargs: object) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return torch.tensor(float("nan")), {}

    monkeypatch.setattr(methods, "byol_objective", diverged)
    assert main(["pretrain", "--config", str(tiny_config), "--out", str(tmp_path / "run")]) == 2
    assert "loss became nan at step 0" in _one_error_line(capsys)


class _Broken(Dataset[int]):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        raise ValueError(f"box 3 of photos/x{i}.jpg lies outside the image")


def test_a_value_error_in_a_data_loader_worker_is_its_own_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def run_with_a_worker(args: object) -> int:
        next(iter(DataLoader(_Broken(), num_workers=1)))
        return 0

    monkeypatch.setattr(cli, "cmd_photos", run_with_a_worker)
    assert main(["photos", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert line == "orl: error: box 3 of photos/x0.jpg lies outside the image"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pretrain", "--config", "{cfg}", "--out", "{file}"], "is a file; pass a folder"),
        (["discover", "--checkpoint", "c", "--data", "d", "--out", "{file}"], "is a file"),
        (["export", "--checkpoint", "c", "--format", "torchvision", "--out", "{dir}"], "a folder"),
        (
            ["export", "--checkpoint", "c", "--format", "safetensors", "--out", "{file}"],
            "is a file; pass a folder",
        ),
        (  # a folder is right for safetensors: the next check is the checkpoint's
            ["export", "--checkpoint", "c", "--format", "safetensors", "--out", "{dir}"],
            "c: no such checkpoint file",
        ),
        (
            ["eval", "knn", "--checkpoint", "c", "--train", "t", "--val", "v", "--out", "{dir}"],
            "a folder",
        ),
        (["pretrain", "--config", "{cfg}", "--out", "{file}/run"], "is a file, not a folder"),
    ],
)
def test_an_out_of_the_wrong_kind_is_refused_before_any_work(
    tmp_path: Path,
    tiny_config: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    (tmp_path / "afile").write_text("keep me")
    paths = {"cfg": str(tiny_config), "file": str(tmp_path / "afile"), "dir": str(tmp_path)}
    assert main([a.format(**paths) for a in argv]) == 2
    assert message in _one_error_line(capsys)
    assert (tmp_path / "afile").read_text() == "keep me"


def test_a_write_error_on_a_path_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def disk_full(args: object) -> int:
        raise OSError(28, "No space left on device", str(tmp_path / "manifest.csv"))

    monkeypatch.setattr(cli, "cmd_photos", disk_full)
    assert main(["photos", str(tmp_path)]) == 2
    assert "manifest.csv: No space left on device" in _one_error_line(capsys)
