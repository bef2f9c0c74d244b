from __future__ import annotations

from pathlib import Path

import pytest

from orl.config import ConfigError, load_config, parse_override, to_dict
from orl.train.config import PretrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_paper_preset_matches_the_paper() -> None:
    cfg = load_config(PretrainConfig, CONFIGS / "coco_byol_r50_800ep.yaml")
    assert (cfg.arch, cfg.method, cfg.epochs, cfg.batch_size) == ("resnet50", "byol", 800, 512)
    assert cfg.optim.lr * cfg.batch_size / 256 == pytest.approx(0.4)
    assert (cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.warmup_epochs) == (0.9, 1e-4, 4)
    assert (cfg.model.proj_hidden, cfg.model.proj_dim, cfg.model.tau) == (4096, 256, 0.99)
    assert cfg.augment.image_size == 224 and cfg.model.sync_bn


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_training_preset_takes_the_common_overrides(name: str) -> None:
    raw = (CONFIGS / name).read_text()
    if "method:" not in raw:
        pytest.skip("not a training preset")
    cfg = load_config(
        PretrainConfig,
        CONFIGS / name,
        ["data=/tmp/x", "epochs=1", "arch=resnet50", "batch_size=64", "optim.lr=0.1"],
    )
    assert (cfg.data, cfg.epochs, cfg.arch, cfg.optim.lr) == (["/tmp/x"], 1, "resnet50", 0.1)


def test_overrides_parse_yaml_values() -> None:
    assert parse_override("optim.lr=0.1") == (["optim", "lr"], 0.1)
    assert parse_override("data=[a, b]") == (["data"], ["a", "b"])
    assert parse_override("compile=true") == (["compile"], True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=0.1", "unknown key 'optim.lrr'"),
        ("epochs=ten", "'epochs' must be an integer"),
        ("compile=3", "'compile' must be true or false"),
        ("method=simclr", "'method' must be one of"),
        ("arch=vgg", "unknown arch 'vgg'"),
        ("optim=3", "'optim' must be a mapping"),
    ],
)
def test_bad_settings_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(PretrainConfig, CONFIGS / "demo_byol.yaml", [override])


def test_round_trip_through_dict() -> None:
    cfg = load_config(PretrainConfig, CONFIGS / "demo_byol.yaml")
    from orl.config import config_from_dict

    assert config_from_dict(PretrainConfig, to_dict(cfg)) == cfg
