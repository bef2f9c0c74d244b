from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
import torchvision
from tests.conftest import write_images
from tests.data.test_decode import write_zero_png

from orl.cli import main
from orl.config import ConfigError, override
from orl.evaluate import cli, commands
from orl.evaluate.inputs import EvalInputError
from orl.evaluate.linear import LinearConfig
from orl.evaluate.semi import SemiConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orl")
    cli.add_parsers(p.add_subparsers(dest="command", required=True))
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


def test_commands_are_registered() -> None:
    p = parser()
    for argv in (
        ["eval", "voc07", "--checkpoint", "c", "--voc", "v"],
        ["eval", "voc07-lowshot", "--checkpoint", "c", "--voc", "v", "--select-c-on-test"],
        ["eval", "linear", "--checkpoint", "c", "--train", "t", "--val", "v", "--preset", "inat18"],
        ["eval", "semi", "--checkpoint", "c", "--train", "t", "--subset", "s", "--val", "v"],
        ["eval", "knn", "--checkpoint", "c", "--train", "t", "--val", "v"],
        ["export", "--checkpoint", "c", "--format", "detectron2", "--out", "o"],
    ):
        assert callable(p.parse_args(argv).func)


def test_overrides_are_typed_with_the_one_set_syntax() -> None:
    cfg = override(LinearConfig(), ["epochs=2", "lr=0.5", "layers=[feat4, feat5]"])
    assert (cfg.epochs, cfg.lr, cfg.layers) == (2, 0.5, ("feat4", "feat5"))
    assert override(SemiConfig(), ["decay_at=[0.5]"]).decay_at == (0.5,)
    with pytest.raises(ConfigError, match="'epochs' must be an integer"):
        override(LinearConfig(), ["epochs=two"])
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        override(LinearConfig(), ["colour=red"])


def test_eval_and_pretrain_read_set_alike(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "linear", "--checkpoint", "c", "--train", "t", "--val", "v"]
    assert main([*argv, "--set", "optim.lr=1"]) == 2
    assert capsys.readouterr().err.strip().endswith("unknown key 'optim'")


def test_voc07_end_to_end_writes_json_and_reuses_the_cache(
    voc_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "voc07.json"
    argv = ["eval", "voc07", "--checkpoint", "random:resnet18", "--voc", str(voc_root.parent),
            "--out", str(out), "--jobs", "1", "--workers", "0", "--device", "cpu",
            "--costs", "0.01,1"]  # fmt: skip
    assert run(argv) == 0
    report = json.loads(out.read_text())
    assert (
        0.0 <= report["layers"]["feat5"]["mAP"] <= 1.0
        and report["checkpoint"] == "random:resnet18:seed0"
    )
    assert report["costs"] == [0.01, 1.0]
    assert "mAP" in capsys.readouterr().out
    assert len(list((tmp_path / "feature-cache").glob("feat5-*.npy"))) == 2  # trainval and test

    def no_extraction(*args: object, **kwargs: object) -> None:
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(commands, "extract_features", no_extraction)
    assert run(argv) == 0
    assert json.loads(out.read_text())["layers"]["feat5"]["mAP"] == report["layers"]["feat5"]["mAP"]


def test_export_cli_writes_a_strict_torchvision_file(tmp_path: Path) -> None:
    out = tmp_path / "r18.pth"
    assert (
        run(
            [
                "export",
                "--checkpoint",
                "random:resnet18",
                "--format",
                "torchvision",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    torchvision.models.resnet18().load_state_dict(torch.load(out, weights_only=True), strict=True)


def test_bad_checkpoint_through_the_cli(tmp_path: Path) -> None:
    with pytest.raises(EvalInputError, match="no such checkpoint"):
        run(
            [
                "export",
                "--checkpoint",
                str(tmp_path / "x.pt"),
                "--format",
                "torchvision",
                "--out",
                "o",
            ]
        )


def test_knn_cli(image_folders: tuple[Path, Path], tmp_path: Path) -> None:
    train, val = image_folders
    out = tmp_path / "knn.json"
    argv = ["eval", "knn", "--checkpoint", "random:resnet18", "--train", str(train),
            "--val", str(val), "--out", str(out), "--workers", "0", "--device", "cpu",
            "--k", "3"]  # fmt: skip
    assert run(argv) == 0
    assert json.loads(out.read_text())["top1"] == 1.0  # red vs blue


def test_an_unusable_evaluation_image_is_one_line_from_a_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = tmp_path / "train"
    write_images(train / "a", 1)
    write_images(train / "b", 1, seed=1)
    bomb = write_zero_png(train / "b" / "bomb.png", 13_400, 13_400)
    argv = ["eval", "knn", "--checkpoint", "random:resnet18", "--train", str(train),
            "--val", str(train), "--cache-dir", str(tmp_path / "cache"), "--workers", "1",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"orl: error: {bomb}: unusable image") and "\n" not in err, err
