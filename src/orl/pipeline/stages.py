"""Resumable units of work: a folder, a key, and `stage.json` saying whether it is done.

A stage is recomputed only when its key changes (`config.settings_key`): the hash of its resolved
settings, the data set's fingerprint and the keys of the stages it reads. Each stage folder holds
`stage.json` (`key`, `status` running/done, `wall_time_s`); a folder whose key is current and
whose status is `done` is reused as is, a `running` one is continued with `--resume` (the stages
resume exactly), anything else is cleared and recomputed. A failing stage raises `StageFailed`
with the stage named and its error log; finished stages stay intact. Used by `orl run` and the
scene study.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orl import distributed
from orl.artifacts import atomic_write_text

STAGE_FILE = "stage.json"
ERROR_FILE = "error.log"


class StageFailed(RuntimeError):
    """A stage raised; the message names the stage and its error log."""


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
            atomic_write_text(traceback.format_exc(), folder / ERROR_FILE)
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
