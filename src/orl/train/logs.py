"""What a run writes as it goes: metrics.jsonl, TensorBoard events, the progress bar."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tqdm import tqdm


class RunLog:
    """Rank 0's writer of one JSON object per logged step plus TensorBoard scalars.

    On other ranks (or with no run folder) every method is a no-op.
    """

    def __init__(self, run_dir: Path | None, enabled: bool, total: int, initial: int) -> None:
        self.enabled = enabled
        self.metrics = None
        self.tb: Any = None
        if enabled and run_dir is not None:
            self.metrics = (run_dir / "metrics.jsonl").open("a", encoding="utf-8")
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=initial)
        self.bar = tqdm(
            total=total,
            initial=initial,
            disable=not enabled,
            unit="step",
            dynamic_ncols=True,
            mininterval=1.0,
        )

    def step(self, record: dict[str, Any], show: dict[str, str]) -> None:
        if not self.enabled:
            return
        if self.metrics is not None:
            clean = {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in record.items()
            }
            self.metrics.write(json.dumps(clean) + "\n")
            self.metrics.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, int | float):
                    self.tb.add_scalar(f"train/{key}", value, record["step"])
        self.bar.set_postfix(show, refresh=False)

    def advance(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a line that does not parse (a killed run's torn last line)
    is left out."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [record for _, record in _parsed_lines(text)]


def _parsed_lines(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(raw line, record) of every line that is a JSON object with a numeric `step`."""
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int | float):
            out.append((line, record))
    return out
