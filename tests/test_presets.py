"""Bundled presets: resolution by name, `orl presets`, and an installed wheel without a clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from orl import presets
from orl.cli import main
from orl.config import ConfigError, config_path, load_config
from orl.presets import PRESET_DIR, bundled_preset, preset_description, preset_names
from orl.train.config import PretrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_a_name_with_or_without_suffix_or_folder_finds_the_bundled_file() -> None:
    expected = PRESET_DIR / "coco_orl_r50_800ep.yaml"
    assert bundled_preset(Path("coco_orl_r50_800ep")) == expected
    assert bundled_preset(Path("coco_orl_r50_800ep.yaml")) == expected
    d2 = PRESET_DIR / "detectron2" / "mask_rcnn_R_50_FPN_1x_orl.yaml"
    assert bundled_preset(Path("detectron2/mask_rcnn_R_50_FPN_1x_orl")) == d2
    # the former repository layout, relative or absolute
    assert bundled_preset(Path("configs/demo.yaml")) == PRESET_DIR / "demo.yaml"
    assert bundled_preset(ROOT / "configs" / "detectron2" / d2.name) == d2
    assert bundled_preset(Path("/elsewhere/demo.yaml")) is None
    assert bundled_preset(Path("no_such_preset")) is None


def test_a_name_cannot_leave_the_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "inside.yaml").write_text("{}")
    (tmp_path / "outside.yaml").write_text("{}")
    monkeypatch.setattr(presets, "PRESET_DIR", tmp_path / "bundle")
    assert bundled_preset(Path("inside")) == tmp_path / "bundle" / "inside.yaml"
    assert bundled_preset(Path("../outside")) is None


def test_a_file_wins_over_a_preset_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo_byol.yaml").write_text("epochs: 3\n")
    assert config_path(Path("demo_byol.yaml")) == Path("demo_byol.yaml")
    assert config_path(Path("demo_byol")) == PRESET_DIR / "demo_byol.yaml"
    with pytest.raises(ConfigError, match=r"no_such: config file not found .*orl presets"):
        config_path(Path("no_such"))


def test_a_bare_name_loads_the_paper_preset() -> None:
    cfg = load_config(PretrainConfig, Path("coco_orl_r50_800ep"), ["epochs=2"])
    assert (cfg.method, cfg.arch, cfg.batch_size, cfg.epochs) == ("orl", "resnet50", 512, 2)


def test_every_preset_is_listed_with_its_first_comment_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = preset_names()
    assert {"demo", "coco_orl_r50_800ep", "detectron2/mask_rcnn_R_50_FPN_1x_orl"} <= set(names)
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == len(names)
    for name, line in zip(names, lines, strict=True):
        description = preset_description(PRESET_DIR / f"{name}.yaml")
        assert description and not description.startswith("#")
        assert line.split()[0] == name and line.endswith(description)
    assert main(["presets", "--path", "demo"]) == 0
    assert capsys.readouterr().out.strip() == str(PRESET_DIR / "demo.yaml")


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel of a copy of the project (the build writes nothing into the checkout)."""
    src = tmp_path / "project"
    shutil.copytree(
        ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(src)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("orl-*.whl")
    return wheel


@pytest.mark.slow
def test_installed_wheel_lists_and_loads_presets_outside_the_repository(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # The new environment reuses this one's packages (torch, ...) but not its `orl`.
    (Path(site) / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-compile", "-q", str(wheel)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    away = tmp_path / "elsewhere"  # no configs/ folder, no source tree
    away.mkdir()
    listed = subprocess.run(
        [str(venv / "bin" / "orl"), "presets"],
        check=True, capture_output=True, text=True, env=env, cwd=away,
    ).stdout  # fmt: skip
    assert "coco_orl_r50_800ep" in listed and str(Path(site) / "orl" / "configs") in listed
    code = (
        "import orl; from pathlib import Path; from orl.config import load_config; "
        "from orl.pipeline.config import resolve_pipeline; "
        "from orl.train.config import PretrainConfig; "
        "c = load_config(PretrainConfig, Path('coco_orl_r50_800ep')); "
        "p = resolve_pipeline(Path('demo'), []); "
        "print(orl.__file__, c.method, c.epochs, p.stage1.arch)"
    )
    out = subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True, env=env, cwd=away
    ).stdout.split()
    assert out[0].startswith(site) and out[1:] == ["orl", "800", "resnet18"]
