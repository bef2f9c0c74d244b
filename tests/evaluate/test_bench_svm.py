from __future__ import annotations

import numpy as np
import pytest

from orl.evaluate.bench_svm import bench_svm, synthetic_voc


def test_synthetic_features_have_voc_shape_and_frequencies() -> None:
    x, y, x_test, y_test = synthetic_voc(n_train=2000, n_test=10, dim=16)
    assert x_test.shape == (10, 16)
    assert x.shape == (2000, 16) and x.dtype == np.float32 and y_test.shape == (10, 20)
    assert (x >= 0).all()
    assert (y[:, 14] == 1).mean() == pytest.approx(0.401, abs=0.05)  # person


def test_bench_extrapolates_from_a_subset() -> None:
    result = bench_svm(2, 1, (1.0,), n_train=200, n_test=100, dim=64, signal=3.0)
    assert result["fits"] == 2 * (3 + 1)
    assert result["full_protocol_core_s"] == pytest.approx(result["cpu_s"] * 10)
    assert result["mAP"] > 0.5  # strong planted signal is learnable
