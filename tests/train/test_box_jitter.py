import math

import torch
from torchvision.ops import box_iou

from orl.train.orl import JitterConfig, jitter_box


def _xyxy(b: tuple[float, float, float, float]) -> torch.Tensor:
    return torch.tensor([[b[0], b[1], b[0] + b[2], b[1] + b[3]]], dtype=torch.float64)


def test_jittered_boxes_stay_inside_overlap_and_respect_the_ranges() -> None:
    torch.manual_seed(0)
    cfg = JitterConfig()
    box, width, height = (60.0, 50.0, 80.0, 40.0), 300, 200
    moved = 0
    for _ in range(500):
        x, y, w, h = jitter_box(box, width, height, cfg)
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert box_iou(_xyxy(box), _xyxy((x, y, w, h))).item() > 0.5
        if (x, y, w, h) != box:
            moved += 1
            # areas within [0.5, 2] x w h up to rounding of the sides
            assert 0.5 * 3200 * 0.95 <= w * h <= 2 * 3200 * 1.05
            # absolute aspect in [1/2, 2] up to rounding (sides are whole pixels)
            assert 0.5 - 0.05 <= w / h <= 2 + 0.05
            # centre moved by at most half the original width / height
            assert abs(x + w / 2 - 100) <= 40 + 1e-9 and abs(y + h / 2 - 70) <= 20 + 1e-9
    assert moved > 450


def test_aspect_is_absolute_not_relative_to_the_box() -> None:
    """For a 4:1 box, jittered boxes have aspects in [1/2, 2], never near the box's own 4."""
    torch.manual_seed(1)
    box = (10.0, 10.0, 200.0, 50.0)
    moved = [b for b in (jitter_box(box, 400, 400, JitterConfig()) for _ in range(200)) if b != box]
    assert len(moved) > 20
    assert max(w / h for _, _, w, h in moved) <= 2.05


def test_box_that_cannot_move_falls_back_to_itself() -> None:
    torch.manual_seed(0)
    box = (0.0, 0.0, 100.0, 100.0)  # fills the whole image: every candidate leaves it or shrinks
    results = {
        jitter_box(box, 100, 100, JitterConfig(area_min=1.5, area_max=2.0)) for _ in range(20)
    }
    assert results == {box}


def test_zero_attempts_means_no_jitter() -> None:
    assert jitter_box((5, 5, 20, 20), 100, 100, JitterConfig(attempts=0)) == (5, 5, 20, 20)


def test_jitter_is_reproducible_under_a_seed() -> None:
    torch.manual_seed(7)
    a = jitter_box((20, 20, 50, 50), 200, 200, JitterConfig())
    torch.manual_seed(7)
    assert jitter_box((20, 20, 50, 50), 200, 200, JitterConfig()) == a
    assert not math.isclose(a[0], 20) or a[2] != 50
