from __future__ import annotations

from pathlib import Path

import pytest

from orl.config import ConfigError, load_config, parse_override, to_dict
from orl.data.sources import DataSourceError, resolve_sources
from orl.presets import PRESET_DIR
from orl.train.config import PretrainConfig

CONFIGS = PRESET_DIR


def test_paper_preset_matches_the_paper() -> None:
    cfg = load_config(PretrainConfig, CONFIGS / "coco_byol_r50_800ep.yaml")
    assert (cfg.arch, cfg.method, cfg.epochs, cfg.batch_size) == ("resnet50", "byol", 800, 512)
    assert cfg.optim.lr * cfg.batch_size / 256 == pytest.approx(0.4)
    assert (cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.warmup_epochs) == (0.9, 1e-4, 4)
    assert (cfg.model.proj_hidden, cfg.model.proj_dim, cfg.model.tau) == (4096, 256, 0.99)
    assert cfg.augment.image_size == 224 and cfg.model.sync_bn


def test_simclr_preset_matches_the_paper_and_simclr() -> None:
    cfg = load_config(PretrainConfig, CONFIGS / "coco_simclr_r50_800ep.yaml")
    assert (cfg.arch, cfg.method, cfg.epochs, cfg.batch_size) == ("resnet50", "simclr", 800, 512)
    assert cfg.optim.optimizer == "lars" and cfg.optim.trust_coefficient == 0.001
    assert cfg.optim.lr * cfg.batch_size / 256 == pytest.approx(0.6)  # 0.3 x bs/256
    assert (cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.warmup_epochs) == (0.9, 1e-6, 10)
    assert (cfg.model.proj_hidden, cfg.model.proj_dim, cfg.contrastive.temperature) == (
        2048,
        128,
        0.1,
    )
    a = cfg.augment
    assert (a.brightness, a.contrast, a.saturation, a.hue, a.jitter_p) == (0.8, 0.8, 0.8, 0.2, 0.8)
    assert (a.grayscale_p, a.view1_blur_p, a.view2_blur_p, a.min_scale) == (0.2, 0.5, 0.5, 0.08)
    assert a.view1_solarize_p == a.view2_solarize_p == 0.0


def test_mocov2_preset_matches_the_paper_and_mocov2() -> None:
    cfg = load_config(PretrainConfig, CONFIGS / "coco_mocov2_r50_800ep.yaml")
    assert (cfg.arch, cfg.method, cfg.epochs, cfg.batch_size) == ("resnet50", "mocov2", 800, 256)
    assert cfg.optim.optimizer == "sgd" and cfg.optim.lr * cfg.batch_size / 256 == 0.3
    assert (cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.warmup_epochs) == (0.9, 1e-4, 0)
    assert (cfg.model.proj_hidden, cfg.model.proj_dim, cfg.model.tau) == (2048, 128, 0.999)
    assert (cfg.contrastive.temperature, cfg.contrastive.queue_size) == (0.2, 65536)
    a = cfg.augment
    assert (a.brightness, a.contrast, a.saturation, a.hue, a.jitter_p) == (0.4, 0.4, 0.4, 0.1, 0.8)
    assert (a.grayscale_p, a.view1_blur_p, a.view2_blur_p, a.min_scale) == (0.2, 0.5, 0.5, 0.2)
    assert a.view1_solarize_p == a.view2_solarize_p == 0.0


def test_mocov2_queue_must_hold_a_batch_but_need_not_divide_by_it() -> None:
    demo = CONFIGS / "demo_mocov2.yaml"
    with pytest.raises(ConfigError, match=r"'contrastive\.queue_size' must hold at least"):
        load_config(PretrainConfig, demo, ["contrastive.queue_size=31"])
    cfg = load_config(PretrainConfig, demo, ["contrastive.queue_size=33"])  # wraps around
    assert cfg.contrastive.queue_size == 33
    with pytest.raises(ConfigError, match=r"'contrastive\.temperature' must be positive"):
        load_config(PretrainConfig, demo, ["contrastive.temperature=0"])


TRAINING_PRESETS = sorted(p.name for p in CONFIGS.glob("*.yaml") if "\nmethod:" in p.read_text())


def test_presets_exist() -> None:
    assert {
        "demo_byol.yaml",
        "demo_orl.yaml",
        "demo_simclr.yaml",
        "demo_mocov2.yaml",
        "coco_byol_r50_800ep.yaml",
        "coco_simclr_r50_800ep.yaml",
        "coco_mocov2_r50_800ep.yaml",
    } <= set(TRAINING_PRESETS)


@pytest.mark.parametrize("name", TRAINING_PRESETS)
def test_every_training_preset_takes_the_common_overrides(name: str) -> None:
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
        ("method=swav", "'method' must be one of"),
        ("contrastive.temp=0.2", "unknown key 'contrastive.temp'"),
        ("contrastive.queue_size=many", "'contrastive.queue_size' must be an integer"),
        ("optim.optimizer=adam", "'optim.optimizer' must be one of"),
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


@pytest.mark.parametrize(
    ("byol", "other", "method"),
    [
        ("demo_byol.yaml", "demo_orl.yaml", "orl"),
        ("coco_byol_r50_800ep.yaml", "coco_orl_r50_800ep.yaml", "orl"),
        ("coco_byol_r50_800ep.yaml", "coco_byolmc_r50_800ep.yaml", "byol_multicrop"),
    ],
)
def test_stage3_presets_share_every_stage1_setting(byol: str, other: str, method: str) -> None:
    """Stage 3 uses the same hyper-parameters as stage 1 (sec. 3.2), so comparisons are fair."""
    a = to_dict(load_config(PretrainConfig, CONFIGS / byol))
    b = to_dict(load_config(PretrainConfig, CONFIGS / other))
    assert b["method"] == method
    for key in ("data", "epochs", "arch", "batch_size", "optim", "model", "augment", "max_side"):
        assert a[key] == b[key], key


@pytest.mark.parametrize(
    "name", ["demo.yaml", "coco_orl_pipeline.yaml", "cocoplus_orl_pipeline.yaml"]
)
def test_pipeline_presets_resolve_every_stage(name: str) -> None:
    from orl.pipeline.config import resolve_pipeline

    rp = resolve_pipeline(CONFIGS / name, [])
    assert rp.stage1.method == "byol" and rp.stage3.method == "orl"
    assert rp.stage1.data == rp.stage3.data == list(rp.cfg.data)
    assert (rp.stage2.k, rp.stage2.pair_ratio) == (10, 0.1)  # sec. 3.2: K = 10, N = 10%


def test_pipeline_stage_errors_name_the_stage() -> None:
    from orl.pipeline.config import resolve_pipeline

    with pytest.raises(ConfigError, match=r"^stage2 \(defaults\).*unknown key 'kk'"):
        resolve_pipeline(CONFIGS / "demo.yaml", ["stage2.overrides.kk=3"])


@pytest.mark.parametrize("override", ["data=", "data=[]", "data=['']", "data=' '"])
def test_an_empty_data_setting_is_refused_where_it_is_parsed(tmp_path: Path, override: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: photos\nepochs: 1\narch: resnet18\nmethod: byol\nbatch_size: 2\n")
    with pytest.raises(ConfigError, match="'data' is empty"):
        load_config(PretrainConfig, cfg, [override])


def test_an_empty_data_source_is_refused_by_the_resolver() -> None:
    with pytest.raises(DataSourceError, match="empty data source"):
        resolve_sources([""])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("orl.jitter_aspect_min=0", "orl.jitter_aspect_min"),
        ("orl.jitter_area_max=0.1", "orl.jitter_area_min"),
        ("orl.jitter_min_iou=1", "orl.jitter_min_iou"),
        ("orl.jitter_shift=-1", "orl.jitter_shift"),
        ("orl.jitter_attempts=0", "orl.jitter_attempts"),
    ],
)
def test_invalid_jitter_settings_are_refused_where_they_are_parsed(
    tmp_path: Path, override: str, key: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: photos\nepochs: 1\narch: resnet18\nmethod: orl\nbatch_size: 2\n")
    with pytest.raises(ConfigError, match=key) as err:
        load_config(PretrainConfig, cfg, [override])
    assert "\n" not in str(err.value)
