"""benchmarks/scenes_gpu.py: the inputs it carries to a device rebuild the same scenes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from orl.data.scenes.build import build_scenes_from
from orl.data.scenes.compose import SceneStyle
from tests.data.scenes.conftest import CATEGORIES, synthetic_backgrounds, synthetic_stamps

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scenes_gpu", ROOT / "benchmarks/scenes_gpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scenes_gpu"] = module
    spec.loader.exec_module(module)
    return module


def test_carried_inputs_draw_the_scenes_orl_scenes_would(tmp_path: Path) -> None:
    script = _script()
    stamps, backgrounds = synthetic_stamps(), synthetic_backgrounds(size=128)
    script.save_inputs(stamps, backgrounds, list(CATEGORIES), tmp_path / "inputs.npz")
    device = script.build(tmp_path / "device", 6, 4, 3, inputs=tmp_path / "inputs.npz")
    here = tmp_path / "here"
    build_scenes_from(
        here, stamps, backgrounds, CATEGORIES, size=128, n_train=6, n_test=4, n_test_seen=3,
        style=SceneStyle(**script.STYLE), workers=1, source="scenes_gpu:core", log=lambda _: None,
    )  # fmt: skip
    for split, n in (("train", 6), ("test", 4), ("test_seen", 3)):
        for i in range(n):
            a, b = (np.asarray(Image.open(d / split / f"{i:06d}.png")) for d in (device, here))
            assert np.array_equal(a, b), (split, i)
