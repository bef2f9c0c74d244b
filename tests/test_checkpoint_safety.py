"""A crafted checkpoint (a pickle that calls `os.system` when loaded) is refused by every command
that reads one, also as a timm state dict or a Detectron2 weight pickle given to `--checkpoint`:
exit code 2, one line naming the file, and the payload never runs."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from orl.cli import main
from tests.conftest import write_images


class _Payload:
    """Unpickling this calls `os.system(command)`: what an attacker's checkpoint would hold."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


def write_crafted_checkpoint(path: Path, marker: Path) -> Path:
    """A torch zip file that looks like an orl checkpoint and writes `marker` when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "orl-checkpoint", "online": _Payload(f"touch {marker}")}, path)
    return path


def write_crafted_foreign_files(tmp: Path, marker: Path) -> tuple[Path, Path]:
    """What `--checkpoint` also reads: a timm training checkpoint (`{"state_dict": ...}`) and a
    Detectron2 weight pickle, each running `touch marker` when loaded unsafely."""
    timm = tmp / "evil_timm.pth"
    torch.save({"state_dict": {"conv1.weight": _Payload(f"touch {marker}")}}, timm)
    detectron2 = tmp / "evil.pkl"
    with detectron2.open("wb") as f:
        pickle.dump({"model": {"stem.conv1.weight": _Payload(f"touch {marker}")}}, f)
    return timm, detectron2


def _commands(tmp: Path, ckpt: Path) -> dict[str, list[str]]:
    images = str(write_images(tmp / "images", 3))
    timm, detectron2 = write_crafted_foreign_files(tmp, tmp / "marker")
    run = tmp / "run"
    write_crafted_checkpoint(run / "checkpoints" / "last.pt", tmp / "marker")
    # an evaluation's resume state (`<out stem>.state.pt`) next to a real network and folders
    classes = write_images(tmp / "classes" / "a", 2).parent
    write_crafted_checkpoint(tmp / "eval" / "out.state.pt", tmp / "marker")
    (tmp / "subset.txt").write_text("img_000.jpg\n")
    resumed = [
        "--checkpoint", "random:resnet18", "--train", str(classes), "--val", str(classes),
        "--out", str(tmp / "eval" / "out.json"), "--resume",
    ]  # fmt: skip
    cfg = tmp / "cfg.yaml"
    cfg.write_text(
        f"data: {images}\nepochs: 1\narch: resnet18\nmethod: byol\nbatch_size: 2\nworkers: 0\n"
    )
    c = str(ckpt)
    return {
        "pretrain --resume": ["pretrain", "--config", str(cfg), "--out", str(run), "--resume"],
        "pretrain --resume auto": [
            "pretrain", "--config", str(cfg), "--out", str(run), "--resume", "auto",
        ],
        "pretrain init_from": [
            "pretrain", "--config", str(cfg), "--out", str(tmp / "r2"), "--set", f"init_from={c}",
        ],
        "discover": ["discover", "--checkpoint", c, "--data", images, "--out", str(tmp / "corr")],
        "eval voc07": ["eval", "voc07", "--checkpoint", c, "--voc", str(tmp)],
        "eval voc07-lowshot": ["eval", "voc07-lowshot", "--checkpoint", c, "--voc", str(tmp)],
        "eval linear": ["eval", "linear", "--checkpoint", c, "--train", images, "--val", images],
        "eval semi": [
            "eval", "semi", "--checkpoint", c, "--train", images, "--val", images,
            "--subset", str(cfg),
        ],
        "eval knn": ["eval", "knn", "--checkpoint", c, "--train", images, "--val", images],
        "eval knn timm": [
            "eval", "knn", "--checkpoint", str(timm), "--train", images, "--val", images,
        ],
        "eval knn detectron2": [
            "eval", "knn", "--checkpoint", str(detectron2), "--train", images, "--val", images,
        ],
        "eval scenes": ["eval", "scenes", "--checkpoint", c, "--scenes", str(tmp)],
        "export": ["export", "--checkpoint", c, "--format", "torchvision", "--out", str(tmp / "x")],
        "export timm": ["export", "--checkpoint", c, "--format", "timm", "--out", str(tmp / "x")],
        "export safetensors": [
            "export", "--checkpoint", c, "--format", "safetensors", "--out", str(tmp / "hub"),
        ],
        "eval linear --resume state": ["eval", "linear", *resumed],
        "eval semi --resume state": ["eval", "semi", *resumed, "--subset", str(tmp / "subset.txt")],
        "viz attention": [
            "viz", "attention", "--checkpoint", c, "--images", f"{images}/img_000.jpg",
            "--out", str(tmp / "a.png"),
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [
        "pretrain --resume",
        "pretrain --resume auto",
        "pretrain init_from",
        "discover",
        "eval voc07",
        "eval voc07-lowshot",
        "eval linear",
        "eval semi",
        "eval knn",
        "eval knn timm",
        "eval knn detectron2",
        "eval scenes",
        "export",
        "export timm",
        "export safetensors",
        "eval linear --resume state",
        "eval semi --resume state",
        "viz attention",
    ],
)
def test_crafted_checkpoint_is_refused_without_running_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    marker = tmp_path / "marker"
    ckpt = write_crafted_checkpoint(tmp_path / "evil.pt", marker)
    argv = _commands(tmp_path, ckpt)[name]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    files = ("evil.pt", "last.pt", "out.state.pt", "evil_timm.pth", "evil.pkl")
    assert "refused" in err and any(f in err for f in files)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["timm", "detectron2"])
def test_the_crafted_foreign_files_do_run_code_when_loaded_unsafely(
    tmp_path: Path, kind: str
) -> None:
    """Both payloads are real (so the refusals above can fail)."""
    marker = tmp_path / "marker"
    timm, detectron2 = write_crafted_foreign_files(tmp_path, marker)
    if kind == "timm":
        torch.load(timm, weights_only=False)
    else:
        with detectron2.open("rb") as f:
            pickle.load(f)
    assert marker.exists()


@pytest.mark.parametrize("layout", ["file", "hub folder"])
def test_a_damaged_safetensors_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    """safetensors holds no code, but a torn download must still be one line and exit 2."""
    pytest.importorskip("safetensors")
    folder = tmp_path / "hub"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\xff" * 8 + b"{not json")
    target = folder if layout == "hub folder" else folder / "model.safetensors"
    images = str(write_images(tmp_path / "images", 3))
    argv = ["eval", "knn", "--checkpoint", str(target), "--train", images, "--val", images]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "model.safetensors" in err, err


def test_the_crafted_file_does_run_code_when_loaded_unsafely(tmp_path: Path) -> None:
    """The payload is real: a plain pickle load executes it (so the test above can fail)."""
    marker = tmp_path / "marker"
    ckpt = write_crafted_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(ckpt, weights_only=False)
    assert marker.exists()


def test_torch_floor_excludes_the_weights_only_bypass() -> None:
    """torch < 2.6 lets a crafted file run code through `weights_only=True` (CVE-2025-32434)."""
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    floor = re.search(r'"torch>=(\d+)\.(\d+)', text)
    vision = re.search(r'"torchvision>=0\.(\d+)', text)
    assert floor is not None and vision is not None
    assert (int(floor[1]), int(floor[2])) >= (2, 6) and int(vision[1]) >= 21
