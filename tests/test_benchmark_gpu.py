"""The device benchmark (`benchmarks/gpu.py`) runs its measurements with tiny settings on the
CPU, so the prepared script cannot rot while no device is lent."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks/gpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bench"] = module  # its pool workers find their function by module name
    spec.loader.exec_module(module)
    return module


def test_measurements_and_table_on_tiny_settings(tmp_path: Path) -> None:
    bench = _script()
    bench.prepare(tmp_path, smoke=True)
    step = bench.measure_step("ORL", tmp_path, smoke=True, concat=True)
    loop = bench.measure_loop("ORL", "gpu", tmp_path, smoke=True)
    assert step["images_per_s"] > 0 and loop["images_per_s"] > 0
    assert 0 <= loop["data_wait"] < 1
    text = bench.table({("ORL", "step-concat"): step, ("ORL", "gpu"): loop})
    assert "| ORL |" in text and "not run (budget)" in text
    # the efficiency line: 66 GFLOP per BYOL image, 90 per ORL image (paper presets)
    assert math.isclose(bench.gflop_per_image("BYOL"), 65.6)
    assert round(bench.gflop_per_image("ORL")) == 90


def test_bench_train_takes_the_augment_backend(
    tiny_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from orl.cli import main

    args = ["bench", "train", "--config", str(tiny_config), "--warmup", "1", "--steps", "1"]
    assert main([*args, "--augment-backend", "gpu"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("train images/s: ")
