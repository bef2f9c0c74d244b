import math

import numpy as np
import pytest

from orl.train.schedules import lr_schedule, tau_schedule


def test_tau_schedule_hand_values() -> None:
    taus = tau_schedule(0.99, 1.0, 4)
    # k = 0, 1, 2, 3 of K = 4: 1 - 0.01 * (cos(pi k / 4) + 1) / 2
    expected = [1 - 0.01 * (math.cos(math.pi * k / 4) + 1) / 2 for k in range(4)]
    np.testing.assert_allclose(taus, expected, rtol=0, atol=1e-15)
    assert taus[0] == pytest.approx(0.99)
    assert taus[2] == pytest.approx(0.995)
    assert np.all(np.diff(taus) > 0)


def test_tau_schedule_is_the_old_byol_formula_and_a_constant_for_moco() -> None:
    k = np.arange(1000, dtype=np.float64)
    byol = 1.0 - (1.0 - 0.996) * (np.cos(np.pi * k / 1000) + 1.0) / 2.0
    assert np.array_equal(tau_schedule(0.996, 1.0, 1000), byol)  # bit for bit
    assert np.array_equal(tau_schedule(0.999, 0.999, 1000), np.full(1000, 0.999))


def test_lr_warmup_then_cosine() -> None:
    lrs = lr_schedule(0.4, total_steps=100, steps_per_epoch=10, warmup_epochs=2, warmup_ratio=1e-4)
    cos = lambda k: 0.4 * 0.5 * (1 + math.cos(math.pi * k / 100))  # noqa: E731
    assert lrs[0] == pytest.approx(0.4 * 1e-4)
    # halfway through warm-up: factor 1 - 0.5 * (1 - 1e-4)
    assert lrs[10] == pytest.approx(cos(10) * (1 - 0.5 * (1 - 1e-4)))
    assert lrs[20] == pytest.approx(cos(20))
    assert lrs[60] == pytest.approx(cos(60))
    assert lrs[-1] < 1e-3 and lrs.max() <= 0.4


def test_lr_cosine_per_epoch_is_constant_within_an_epoch() -> None:
    lrs = lr_schedule(
        1.0, total_steps=40, steps_per_epoch=10, warmup_epochs=0, cosine_per_epoch=True
    )
    assert np.all(lrs[10:20] == lrs[10])
    assert lrs[10] == pytest.approx(0.5 * (1 + math.cos(math.pi * 10 / 40)))
