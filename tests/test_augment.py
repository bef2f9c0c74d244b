import dataclasses

import numpy as np
import torch
from PIL import Image

from orl.augment import AugmentConfig, global_view, normalize_on_device, photometric

ONLY_BLUR_AND_SOLARIZE = dict(flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)


def _constant(value: int) -> Image.Image:
    return Image.fromarray(np.full((32, 32, 3), value, np.uint8))


def _checker() -> Image.Image:
    board = (np.indices((32, 32)).sum(0) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.stack([board] * 3, -1))


def _rate(transform, image: Image.Image, changed, n: int = 400) -> float:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    ref = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    return sum(bool(changed(transform(image), ref)) for _ in range(n)) / n


def test_paper_probabilities_are_the_defaults() -> None:
    cfg = AugmentConfig()
    assert (cfg.view1_blur_p, cfg.view1_solarize_p) == (1.0, 0.0)
    assert (cfg.view2_blur_p, cfg.view2_solarize_p) == (0.1, 0.2)
    assert (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue) == (0.4, 0.4, 0.2, 0.1)
    assert (cfg.jitter_p, cfg.grayscale_p, cfg.solarize_threshold) == (0.8, 0.2, 128)


def test_view1_never_solarizes_view2_solarizes_one_time_in_five() -> None:
    cfg = AugmentConfig(**ONLY_BLUR_AND_SOLARIZE)
    solarized = lambda out, ref: out[0, 0, 0] == 55  # noqa: E731  (200 -> 255 - 200)
    assert _rate(photometric(cfg, 1), _constant(200), solarized) == 0.0
    assert 0.14 < _rate(photometric(cfg, 2), _constant(200), solarized) < 0.26


def test_view1_always_blurs_view2_one_time_in_ten() -> None:
    cfg = AugmentConfig(**ONLY_BLUR_AND_SOLARIZE, blur_sigma_min=1.0, view2_solarize_p=0.0)
    blurred = lambda out, ref: not torch.equal(out, ref)  # noqa: E731
    assert _rate(photometric(cfg, 1), _checker(), blurred) == 1.0
    assert 0.06 < _rate(photometric(cfg, 2), _checker(), blurred) < 0.14


def test_global_views_are_uint8_at_the_configured_size() -> None:
    cfg = AugmentConfig(image_size=40)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), np.uint8))
    for view in (1, 2):
        out = global_view(cfg, view)(img)
        assert out.dtype == torch.uint8 and out.shape == (3, 40, 40)
    tiny = Image.fromarray(np.zeros((3, 2, 3), np.uint8))  # smaller than the crop
    assert global_view(cfg, 1)(tiny).shape == (3, 40, 40)
    assert global_view(dataclasses.replace(cfg), 1, size=16)(img).shape == (3, 16, 16)


def test_same_seed_same_view() -> None:
    cfg = AugmentConfig(image_size=24)
    img = _checker()
    torch.manual_seed(3)
    a = global_view(cfg, 2)(img)
    torch.manual_seed(3)
    b = global_view(cfg, 2)(img)
    assert torch.equal(a, b)


def test_normalisation_on_device_uses_imagenet_statistics() -> None:
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize_on_device(x)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(out[0, :, 0, 0], expected)
