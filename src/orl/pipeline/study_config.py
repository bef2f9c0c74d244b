"""Settings of the scene-benchmark study: scenes, methods, seeds and each stage's preset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orl.config import ConfigError, config_path, load_config
from orl.data.scenes.compose import SceneStyle
from orl.discover.config import DiscoverConfig
from orl.pipeline.config import StageSpec, build_stage
from orl.train.config import PretrainConfig

# A row of the study's tables; the self-supervised rows map to a training method in study.py, the
# supervised ones (the ceiling: the same network trained with labels) to `orl supervised`.
Row = Literal[
    "random", "byol", "byol_multicrop", "orl", "orl_gt", "supervised", "supervised_instances"
]
# Run order: ORL rows need the same seed's BYOL model (their stage 1).
METHOD_ORDER: tuple[Row, ...] = (
    "random",
    "byol",
    "byol_multicrop",
    "orl",
    "orl_gt",
    "supervised",
    "supervised_instances",
)


@dataclass(frozen=True)
class ScenesSpec:
    """What `orl scenes` builds (docs/scenes.md); the scene seed is fixed across training seeds."""

    categories: Literal["core", "fast", "all"] = "core"
    size: int = 128
    train: int = 2000
    test: int = 1000
    test_seen: int = 0  # scenes of the train instances on test backgrounds (instance protocol)
    seed: int = 0
    style: SceneStyle = field(default_factory=SceneStyle)


@dataclass(frozen=True)
class EvalSettings:
    """`orl eval scenes` settings: scene side and object-crop side fed to the frozen backbone."""

    image_size: int | None = None  # None: the scenes' own size
    crop_size: int = 64
    # SVM costs tried by the cross-validation: the VOC07 protocol's 19-cost sweep takes ~7
    # core-minutes per feature set at this size, as high costs run to the iteration limit.
    costs: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    jobs: int = 2  # processes for the per-class SVMs
    gray: bool = True  # also every protocol on grayscale images (colour is a shortcut here)


@dataclass(frozen=True)
class PeerParitySpec:
    """One configuration at which `benchmarks/peer_parity.py` trains orl's BYOL and a BYOL built
    from lightly's blocks (the `bench` extra), 3 seeds each: `overrides` of the `train` preset."""

    name: str
    overrides: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StudyConfig:
    """One study: every method trained with the same preset (`train`) for each seed.

    `train` is the one pre-training preset; each method only changes `method` (and, for ORL, the
    correspondence store), so all trained rows see the same images, epochs, batch and resolution.
    `discover` is stage 2's preset; `orl_gt` runs it with `boxes: coco-gt` (Table 5d).
    """

    scenes: ScenesSpec = field(default_factory=ScenesSpec)
    scenes_dir: str | None = None  # a benchmark `orl scenes` already built: used, `scenes` ignored
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    methods: list[Row] = field(
        default_factory=lambda: ["random", "byol", "byol_multicrop", "orl", "orl_gt"]
    )
    train: StageSpec = field(default_factory=StageSpec)
    discover: StageSpec = field(default_factory=StageSpec)
    eval: EvalSettings = field(default_factory=EvalSettings)
    baselines: bool = True  # colour histogram and raw pixels (seed-independent, computed once)
    peer_parity: list[PeerParitySpec] = field(default_factory=list)  # run by scenes_study.py


@dataclass(frozen=True)
class ResolvedStudy:
    cfg: StudyConfig
    train: PretrainConfig  # data and method are set per run
    discover: DiscoverConfig
    base_dir: Path


def resolve_study(path: Path, overrides: list[str]) -> ResolvedStudy:
    """Read a study YAML (+ `--set`) and validate the stage presets before anything runs."""
    path = config_path(path)  # a bundled preset's stage presets sit next to it
    cfg = load_config(StudyConfig, path, overrides)
    base = path.parent
    if not cfg.seeds:
        raise ConfigError(f"{path}: 'seeds' is empty")
    if ("orl" in cfg.methods or "orl_gt" in cfg.methods) and "byol" not in cfg.methods:
        raise ConfigError(f"{path}: ORL rows need 'byol' in methods (it is their stage 1)")
    train = build_stage(PretrainConfig, cfg.train, base, "train", data=["scenes"], method="byol")
    discover = build_stage(DiscoverConfig, cfg.discover, base, "discover")
    return ResolvedStudy(cfg, train, discover, base)
