"""The pipeline's work folder: where each stage leaves its outputs, and tolerant readers for them.

    WORK_DIR/
      pipeline.json            data_fingerprint, data (sources), stages.<name>.{status, wall_time_s}
      stage1/  stage3/         `orl pretrain` runs: config.yaml, metrics.jsonl, summary.json,
                               checkpoints/last.pt (stage 1 = BYOL, stage 3 = ORL; sec. 3.2, 3.3)
      stage2/                  the correspondence store (sec. 3.1) + optional timing.json
      eval/results.json        protocol, columns, rows[{name, metrics}]
      scenes_study/results.json  optional scene-benchmark study (runs, corr, baselines)

Every file is optional: a reader returns None for a file that is not there, so the report can say
"not run" for a stage that has not run (or not finished) instead of failing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

STAGE1_DIR = "stage1"
STAGE2_DIR = "stage2"
STAGE3_DIR = "stage3"
EVAL_DIR = "eval"
SCENES_DIR = "scenes_study"  # optional: the scene-benchmark study (pipeline/study.py)
PIPELINE_FILE = "pipeline.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoints/last.pt"
TIMING_FILE = "timing.json"
RESULTS_FILE = "results.json"
STORE_META_FILE = "meta.json"
# The stage names used as keys of pipeline.json's `stages`, in pipeline order.
STAGES = (STAGE1_DIR, STAGE2_DIR, STAGE3_DIR, EVAL_DIR)


@dataclass(frozen=True)
class JsonFile:
    """A JSON object read from disk: `data` is None when the file is missing or unreadable, and
    `problem` then says which ("" when the file was read)."""

    data: dict[str, Any] | None
    problem: str


def read_json(path: Path) -> JsonFile:
    if not path.is_file():
        return JsonFile(None, "not run")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return JsonFile(None, f"unreadable ({path.name}: {exc})")
    if not isinstance(data, dict):
        return JsonFile(None, f"unreadable ({path.name}: not a JSON object)")
    return JsonFile(data, "")


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; lines that do not parse (a killed run's torn last line)
    are left out."""
    text = read_text(path)
    records = []
    for line in (text or "").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int | float):
            records.append(record)
    return records


def metric_series(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of `key`; a record without it, or with null (non-finite when logged),
    gives NaN."""
    steps = np.array([float(r["step"]) for r in records], dtype=np.float64)
    values = np.array(
        [float(v) if isinstance(v := r.get(key), int | float) else np.nan for r in records],
        dtype=np.float64,
    )
    return steps, values


def number(obj: dict[str, Any] | None, key: str) -> float | None:
    """`obj[key]` as a float when it is a number (NaN included), else None."""
    value = (obj or {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
