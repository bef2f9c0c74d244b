"""Progress bars of long jobs: counts, rate and ETA on a terminal, silent elsewhere."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torchvision

from orl.evaluate.features import extract_features, svm_transform
from orl.evaluate.svm import ClassTask, run_svm_tasks
from orl.progress import progress
from tests.conftest import write_images


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def terminal_stderr() -> Iterator[Terminal]:
    """stderr as a terminal, inside the test body (pytest swaps stderr after fixture setup)."""
    screen = Terminal()
    with contextlib.redirect_stderr(screen):
        yield screen


def test_bar_is_silent_when_stderr_is_not_a_terminal() -> None:
    log = io.StringIO()
    with contextlib.redirect_stderr(log):
        assert list(progress(range(3), desc="work")) == [0, 1, 2]
    assert log.getvalue() == ""
    with terminal_stderr() as screen:
        assert list(progress(range(3), desc="work")) == [0, 1, 2]
    assert "work: 100%" in screen.getvalue()


def test_feature_extraction_counts_images_with_rate_and_eta(tmp_path: Path) -> None:
    paths = sorted(write_images(tmp_path / "images", 5).iterdir())
    net = torchvision.models.resnet18()
    with terminal_stderr() as screen:
        extract_features(net, paths, ["feat5"], svm_transform(), batch_size=2)
    final = screen.getvalue().split("\r")[-1]
    assert final.startswith("features: 100%") and "5/5 [" in final and "img/s]" in final
    assert "<00:00" in final  # elapsed<remaining: the ETA field


def test_svm_bars_count_every_cv_and_final_fit() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4))
    y = np.where(np.arange(12) % 2 == 0, 1, -1)
    tasks = [ClassTask(None, y, y), ClassTask(None, -y, -y)]
    with terminal_stderr() as screen:
        run_svm_tasks(x, x, tasks, costs=(0.1, 1.0, 10.0))
    out = screen.getvalue()
    assert "SVM cost CV: 100%" in out and "6/6 [" in out  # 2 tasks x 3 costs
    assert "SVM fits: 100%" in out and "2/2 [" in out
