"""Tolerant readers of the work folder's files for the report: a missing or unreadable file gives
None and a reason, never an exception (the layout is `pipeline/layout.py`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


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
