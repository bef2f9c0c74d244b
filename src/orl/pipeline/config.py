"""Settings of `orl run`: which preset each stage uses, with overrides, and the evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orl.config import ConfigError, config_path, load_config, read_yaml, set_nested
from orl.discover.config import DiscoverConfig
from orl.train.config import PretrainConfig

T = TypeVar("T")


@dataclass(frozen=True)
class StageSpec:
    """A stage's preset (a YAML path relative to the pipeline file) and overrides.

    `overrides` maps dotted keys to values, e.g. `{epochs: 6, optim.lr: 0.1}`. Training stages
    always take the pipeline's `data`.
    """

    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSpec:
    """The demo evaluation: linear-SVM and kNN probes on labelled images (evaluate/probe.py).

    `manifest` is a CSV with `path` and `labels` columns (as `orl photos` writes; paths relative
    to the manifest, relative manifest paths relative to the pipeline file). Only labels that
    start with `label_prefix` count; classes with fewer than `min_per_class` images are dropped.
    """

    manifest: str
    label_prefix: str = ""
    min_per_class: int = 5
    folds: int = 3


@dataclass(frozen=True)
class PipelineConfig:
    data: list[str]
    stage1: StageSpec = field(default_factory=StageSpec)
    stage2: StageSpec = field(default_factory=StageSpec)
    stage3: StageSpec = field(default_factory=StageSpec)
    eval: EvalSpec | None = None
    report: bool = True
    report_photos: int = 4  # photos with attention maps in the report
    report_pairs: int = 8  # correspondence pairs in the report gallery
    # A scene-benchmark study YAML (relative to this file) run after the evaluation, its tables
    # shown in the report next to the probe on the photos; single-process runs only.
    scenes_study: str | None = None


@dataclass(frozen=True)
class ResolvedPipeline:
    """The pipeline with every stage's config built and validated before anything runs."""

    cfg: PipelineConfig
    stage1: PretrainConfig
    stage2: DiscoverConfig
    stage3: PretrainConfig
    base_dir: Path


def build_stage(cls: type[T], spec: StageSpec, base_dir: Path, name: str, **fixed: Any) -> T:
    """A stage's config: its preset, then its overrides, then `fixed`; errors name the stage."""
    preset: dict[str, Any] = read_yaml(base_dir / spec.config) if spec.config else {}
    items = [(k.split("."), v) for k, v in {**spec.overrides, **fixed}.items()]
    try:
        return load_config(cls, None, base=set_nested(preset, items))
    except ConfigError as exc:
        raise ConfigError(f"{name} ({spec.config or 'defaults'}): {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{name} ({spec.config or 'defaults'}): {exc}") from exc


def resolve_pipeline(path: Path, overrides: list[str]) -> ResolvedPipeline:
    """Read a pipeline YAML (+ `--set`) and build the three stage configs; errors name the stage."""
    path = config_path(path)  # a bundled preset's stage presets sit next to it
    cfg = load_config(PipelineConfig, path, overrides)
    base = path.parent
    data = [str(d) for d in cfg.data]
    s1 = build_stage(PretrainConfig, cfg.stage1, base, "stage1", data=data)
    s2 = build_stage(DiscoverConfig, cfg.stage2, base, "stage2")
    s3 = build_stage(PretrainConfig, cfg.stage3, base, "stage3", data=data)
    if s1.method == "orl":
        raise ConfigError(f"{path}: stage1 must be image-level (byol), not 'orl'")
    if s3.method != "orl":
        raise ConfigError(f"{path}: stage3 must use method 'orl'")
    return ResolvedPipeline(cfg, s1, s2, s3, base)
