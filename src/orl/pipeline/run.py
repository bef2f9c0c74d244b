"""`orl run`: stage 1, stage 2, stage 3 and the evaluation, each in its own folder.

Each stage is a resumable unit (pipeline/stages.py): recomputed only when its key changes, and
then so is everything downstream of it. A failing stage stops the pipeline with the stage named
and its error log; finished stages stay intact. The report (viz/report.py) is drawn afterwards
from what the folders hold.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orl import distributed
from orl.artifacts import atomic_write_text
from orl.config import settings_key, to_dict
from orl.data.photo_sources import FetchError
from orl.data.sources import ImageList, resolve_sources
from orl.discover.pipeline import run_discover
from orl.pipeline import layout
from orl.pipeline.config import EvalSpec, PipelineConfig, ResolvedPipeline, resolve_pipeline
from orl.pipeline.probe_stage import run_probe
from orl.pipeline.stages import StageFailed, run_stage
from orl.pipeline.study import run_study
from orl.pipeline.study_config import ResolvedStudy, resolve_study
from orl.train.loop import pretrain


@dataclass(frozen=True)
class PipelineRun:
    """What the report of a finished pipeline needs."""

    cfg: PipelineConfig
    image_paths: list[str]  # position i: image i of the data set (and of the stage-2 store)
    is_main: bool  # rank 0, the only process that writes the report


def _images_per_s(images: ImageList, state: dict[str, Any]) -> float:
    wall = float(state.get("wall_time_s", 0.0))
    return len(images) / wall if wall > 0 else float("nan")


@dataclass(frozen=True)
class _Stages:
    """Runs each stage of one pipeline as a resumable unit; rank 0 records the state of every
    stage in `pipeline.json` as soon as it finishes."""

    out: Path
    dirs: dict[str, Path]  # stage name -> its folder
    resume: bool
    is_main: bool
    record: dict[str, Any]  # what pipeline.json holds

    def say(self, message: str) -> None:
        if self.is_main:
            print(message, flush=True)

    def run(self, name: str, key: str, work: Callable[[], None]) -> None:
        state = run_stage(name, self.dirs[name], key, work, self.resume, self.is_main, self.say)
        self.record["stages"][name] = state
        if self.is_main:
            text = json.dumps(self.record, indent=1) + "\n"
            atomic_write_text(text, self.out / layout.PIPELINE_FILE)


def _write_stage2_timing(stages: _Stages, images: ImageList) -> None:
    """Stage 2's wall time and images/s beside its store (rank 0 only)."""
    if stages.is_main:
        s2 = stages.record["stages"][layout.STAGE2_DIR]
        timing = {"wall_time_s": s2["wall_time_s"], "images_per_s": _images_per_s(images, s2)}
        folder = stages.dirs[layout.STAGE2_DIR]
        atomic_write_text(json.dumps(timing) + "\n", folder / layout.TIMING_FILE)


def _evaluate(
    stages: _Stages, spec: EvalSpec, base_dir: Path, checkpoints: dict[str, str], key: str
) -> None:
    """The probe of the random init, BYOL and ORL backbones."""

    def evaluation() -> None:
        if stages.is_main:  # a few hundred images: one process is enough
            run_probe(spec, base_dir, checkpoints, stages.dirs[layout.EVAL_DIR])

    stages.run(layout.EVAL_DIR, key, evaluation)


def _scene_study(stages: _Stages, study: ResolvedStudy, world_size: int) -> None:
    """The scene study, in one process; skipped when its packages cannot be fetched."""
    if world_size > 1:
        stages.say("scene study skipped under torchrun: run benchmarks/scenes_study.py on its own")
        return
    key = settings_key("scenes", to_dict(study.cfg), to_dict(study.train), to_dict(study.discover))

    def scenes() -> None:
        # The package cache sits outside the stage folder, which a changed key clears.
        folder = stages.dirs[layout.SCENES_DIR]
        run_study(study, folder, stages.out / ".cache-scenes", log=stages.say)

    try:
        stages.run(layout.SCENES_DIR, key, scenes)
    except StageFailed as exc:
        # Without apt-get the stamps cannot be fetched: the demo carries on without the study,
        # as it does without the Debian photos, and a later run with apt-get retries it.
        if not isinstance(exc.__cause__, FetchError):
            raise
        stages.say(f"scene study skipped: {exc.__cause__}")


def run_pipeline(config: Path, out: Path, overrides: list[str], resume: bool) -> PipelineRun:
    """Run every stage of the pipeline in `config` into `out`."""
    rp: ResolvedPipeline = resolve_pipeline(config, overrides)
    study = resolve_study(rp.base_dir / rp.cfg.scenes_study, []) if rp.cfg.scenes_study else None
    dist = distributed.init_distributed(rp.stage1.device)
    images = resolve_sources(rp.cfg.data)
    fp = images.fingerprint
    dirs = {s: out / s for s in (*layout.STAGES, layout.SCENES_DIR)}
    ckpt1 = dirs[layout.STAGE1_DIR] / layout.CHECKPOINT_FILE
    ckpt3 = dirs[layout.STAGE3_DIR] / layout.CHECKPOINT_FILE
    orl_cfg = dataclasses.replace(
        rp.stage3, orl=dataclasses.replace(rp.stage3.orl, corr=str(dirs[layout.STAGE2_DIR]))
    )
    key1 = settings_key("stage1", to_dict(rp.stage1), fp)
    key2 = settings_key("stage2", to_dict(rp.stage2), fp, key1)
    key3 = settings_key("stage3", to_dict(orl_cfg), fp, key2)
    record: dict[str, Any] = {"data_fingerprint": fp, "data": list(rp.cfg.data), "stages": {}}
    stages = _Stages(out, dirs, resume, dist.is_main, record)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)

    def stage1() -> None:
        pretrain(rp.stage1, dirs[layout.STAGE1_DIR], resume=True)

    def stage2() -> None:
        run_discover(rp.stage2, ckpt1, rp.cfg.data, dirs[layout.STAGE2_DIR], resume=True)

    def stage3() -> None:
        pretrain(orl_cfg, dirs[layout.STAGE3_DIR], resume=True)

    stages.run(layout.STAGE1_DIR, key1, stage1)
    stages.run(layout.STAGE2_DIR, key2, stage2)
    _write_stage2_timing(stages, images)
    stages.run(layout.STAGE3_DIR, key3, stage3)
    if rp.cfg.eval is not None:
        checkpoints = {
            "random init": f"random:{rp.stage1.arch}",
            "BYOL": str(ckpt1),
            "ORL": str(ckpt3),
        }
        key = settings_key("eval", to_dict(rp.cfg.eval), key1, key3)
        _evaluate(stages, rp.cfg.eval, rp.base_dir, checkpoints, key)
    if study is not None:
        _scene_study(stages, study, dist.world_size)
    distributed.barrier()
    return PipelineRun(rp.cfg, [images.path(i) for i in range(len(images))], dist.is_main)
