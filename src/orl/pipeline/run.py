"""`orl run`: stage 1, stage 2, stage 3, evaluation and the report, each in its own folder.

A stage is recomputed only when its key changes: the hash of its resolved settings, the data
set's fingerprint and the keys of the stages it reads. Each stage folder holds `stage.json`
(`key`, `status` running/done, `wall_time_s`); a folder whose key is current and whose status is
`done` is reused as is, a `running` one is continued with `--resume` (the stages resume exactly),
anything else is cleared and recomputed, and so is everything downstream of it. A failing stage
stops the pipeline with the stage named and its error log; finished stages stay intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orl.artifacts import atomic_write_text
from orl.config import to_dict
from orl.data.sources import ImageList, resolve_sources
from orl.discover.pipeline import run_discover
from orl.pipeline.config import ResolvedPipeline, resolve_pipeline
from orl.pipeline.probe_stage import run_probe
from orl.train import distributed
from orl.train.loop import pretrain
from orl.viz import report_workdir as layout

STAGE_FILE = "stage.json"
ERROR_FILE = "error.log"


class StageFailed(RuntimeError):
    """A stage raised; the message names the stage and its error log."""


def stage_key(*parts: Any) -> str:
    """SHA-256 of the JSON of everything a stage's output depends on."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _read_state(folder: Path) -> dict[str, Any]:
    try:
        state = json.loads((folder / STAGE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(folder: Path, key: str, status: str, wall: float) -> None:
    state = {"key": key, "status": status, "wall_time_s": wall}
    atomic_write_text(json.dumps(state, indent=1) + "\n", folder / STAGE_FILE)


def run_stage(
    name: str,
    folder: Path,
    key: str,
    work: Callable[[], None],
    resume: bool,
    main: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run `work()` unless `folder` already holds this key's finished output.

    `work` always runs its stage in resume mode: the folder is either cleared here (a fresh start)
    or holds this very stage's interrupted run, which `--resume` continues. `main` is whether this
    process is rank 0, the only one that touches the bookkeeping.
    """
    state = _read_state(folder)
    if state.get("key") == key and state.get("status") == "done":
        log(f"{name}: up to date ({folder})")
        return state
    continue_in_place = resume and state.get("key") == key and state.get("status") == "running"
    earlier = float(state.get("wall_time_s", 0.0)) if continue_in_place else 0.0
    distributed.barrier()
    if main:
        if not continue_in_place and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _write_state(folder, key, "running", earlier)
    distributed.barrier()
    log(f"{name}: {'resuming' if continue_in_place else 'running'} -> {folder}")
    start = time.perf_counter()
    try:
        work()
    except Exception as exc:
        if main:
            (folder / ERROR_FILE).write_text(traceback.format_exc(), encoding="utf-8")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StageFailed(
            f"{name} failed ({type(exc).__name__}: {first}); details in {folder / ERROR_FILE}; "
            "finished stages are kept, rerun with --resume"
        ) from exc
    wall = earlier + time.perf_counter() - start
    if main:
        (folder / ERROR_FILE).unlink(missing_ok=True)  # an earlier failure was resumed past
        _write_state(folder, key, "done", wall)
    distributed.barrier()
    return {"key": key, "status": "done", "wall_time_s": wall}


def _images_per_s(images: ImageList, state: dict[str, Any]) -> float:
    wall = float(state.get("wall_time_s", 0.0))
    return len(images) / wall if wall > 0 else float("nan")


def run_pipeline(config: Path, out: Path, overrides: list[str], resume: bool) -> Path:
    """Run every stage of the pipeline in `config` into `out`; returns the report's path."""
    rp: ResolvedPipeline = resolve_pipeline(config, overrides)
    dist = distributed.init_distributed(rp.stage1.device)
    images = resolve_sources(rp.cfg.data)
    fp = images.fingerprint
    dirs = {s: out / s for s in layout.STAGES}
    ckpt1 = dirs[layout.STAGE1_DIR] / layout.CHECKPOINT_FILE
    ckpt3 = dirs[layout.STAGE3_DIR] / layout.CHECKPOINT_FILE
    orl_cfg = dataclasses.replace(
        rp.stage3, orl=dataclasses.replace(rp.stage3.orl, corr=str(dirs[layout.STAGE2_DIR]))
    )
    key1 = stage_key("stage1", to_dict(rp.stage1), fp)
    key2 = stage_key("stage2", to_dict(rp.stage2), fp, key1)
    key3 = stage_key("stage3", to_dict(orl_cfg), fp, key2)
    record: dict[str, Any] = {"data_fingerprint": fp, "data": list(rp.cfg.data), "stages": {}}
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)

    def say(message: str) -> None:
        if dist.is_main:
            print(message, flush=True)

    def stage(name: str, key: str, work: Callable[[], None]) -> None:
        state = run_stage(name, dirs[name], key, work, resume, dist.is_main, say)
        record["stages"][name] = state
        if dist.is_main:
            atomic_write_text(json.dumps(record, indent=1) + "\n", out / layout.PIPELINE_FILE)

    def stage1() -> None:
        pretrain(rp.stage1, dirs[layout.STAGE1_DIR], resume=True)

    def stage2() -> None:
        run_discover(rp.stage2, ckpt1, rp.cfg.data, dirs[layout.STAGE2_DIR], resume=True)

    def stage3() -> None:
        pretrain(orl_cfg, dirs[layout.STAGE3_DIR], resume=True)

    stage(layout.STAGE1_DIR, key1, stage1)
    stage(layout.STAGE2_DIR, key2, stage2)
    if dist.is_main:
        s2 = record["stages"][layout.STAGE2_DIR]
        timing = {"wall_time_s": s2["wall_time_s"], "images_per_s": _images_per_s(images, s2)}
        atomic_write_text(json.dumps(timing) + "\n", dirs[layout.STAGE2_DIR] / layout.TIMING_FILE)
    stage(layout.STAGE3_DIR, key3, stage3)
    if rp.cfg.eval is not None:
        spec = rp.cfg.eval
        checkpoints = {
            "random init": f"random:{rp.stage1.arch}",
            "BYOL": str(ckpt1),
            "ORL": str(ckpt3),
        }

        def evaluation() -> None:
            if dist.is_main:  # a few hundred images: one process is enough
                run_probe(spec, rp.base_dir, checkpoints, dirs[layout.EVAL_DIR])

        stage(layout.EVAL_DIR, stage_key("eval", to_dict(spec), key1, key3), evaluation)
    report = out / "report.html"
    if rp.cfg.report and dist.is_main:
        from orl.viz.report import write_report

        write_report(out, report, out / "report.md", [images.path(i) for i in range(len(images))])
    say(f"pipeline finished -> {report}")
    distributed.barrier()
    return report
