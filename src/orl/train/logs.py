"""What a run writes as it goes (metrics.jsonl, TensorBoard events, optionally a Weights & Biases
run, the progress bar), the throughput meter, and the readers of metrics.jsonl."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from orl import distributed
from orl.artifacts import atomic_write_text
from orl.config import ConfigError
from orl.train.config import WandbConfig

METRICS_FILE = "metrics.jsonl"
WANDB_ID_FILE = "wandb_run_id"  # the W&B run a resumed or requeued process continues
WANDB_ID_MAX = 64
WANDB_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{WANDB_ID_MAX}}}")


class RunLog:
    """Per step, the loss and its terms; every `every` steps (and at `total`) one JSON line of
    their means since the last line, averaged over ranks, plus TensorBoard scalars.

    Only rank 0 (with a run folder) writes; every rank must call `write` (it averages over ranks).
    With `wandb`, rank 0 also mirrors every line into a Weights & Biases run (`start_wandb`).
    """

    def __init__(
        self,
        run_dir: Path | None,
        enabled: bool,
        total: int,
        initial: int,
        wandb: WandbConfig | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.enabled = enabled
        self.total = total
        self.window: list[list[float]] = []  # per step: total loss, then each branch's term
        self.metrics = None
        self.tb: Any = None
        self.wandb: Any = None
        if enabled and run_dir is not None:
            self.metrics = (run_dir / METRICS_FILE).open("a", encoding="utf-8")
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=initial)
            if wandb is not None:
                self.wandb = start_wandb(wandb, run_dir, config or {})
        self.bar = tqdm(
            total=total,
            initial=initial,
            disable=not enabled,
            unit="step",
            dynamic_ncols=True,
            mininterval=1.0,
        )

    def due(self, step: int, every: int) -> bool:
        """Whether `step` (just done) writes a line."""
        return step % every == 0 or step == self.total

    def add(self, values: list[torch.Tensor]) -> None:
        """Record one step's total loss and branch terms; advance the bar."""
        self.window.append([v.item() for v in values])
        self.bar.update(1)

    def write(
        self,
        step: int,
        epoch: float,
        branches: tuple[str, ...],
        extra: dict[str, float],
        show: dict[str, str],
    ) -> float:
        """One line: step, epoch, the window's mean `loss` and `loss_<branch>` terms, then `extra`
        (lr, tau, images/s); `show` goes to the progress bar. Returns the mean loss."""
        stats = distributed.all_reduce_mean(torch.tensor(self.window).mean(0)).tolist()
        self.window.clear()
        terms = {f"loss_{b}": v for b, v in zip(branches, stats[1:], strict=True)}
        record = {"step": step, "epoch": epoch, "loss": stats[0], **terms, **extra}
        if self.enabled:
            self._write(record, {"loss": f"{stats[0]:.4f}", **show})
        return float(stats[0])

    def write_monitor(self, step: int, epoch: float, values: dict[str, float]) -> None:
        """One line of the online kNN monitor (`knn_*`, no loss), TensorBoard `monitor/*`."""
        if self.enabled:
            record = {"step": step, "epoch": epoch, **values}
            show = {k.removeprefix("knn_"): f"{v:.3f}" for k, v in values.items() if "top1" in k}
            self._write(record, show, "monitor")

    def _write(self, record: dict[str, Any], show: dict[str, str], group: str = "train") -> None:
        if self.metrics is not None:
            clean = {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in record.items()
            }
            self.metrics.write(json.dumps(clean) + "\n")
            self.metrics.flush()
        scalars = {
            f"{group}/{key}": value
            for key, value in record.items()
            if key not in ("step", "epoch") and isinstance(value, int | float)
        }
        if self.tb is not None:
            for tag, value in scalars.items():
                self.tb.add_scalar(tag, value, record["step"])
        if self.wandb is not None:
            self.wandb.log({**scalars, "epoch": record["epoch"]}, step=record["step"])
        self.bar.set_postfix(show, refresh=False)

    def close(self) -> None:
        self.bar.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def start_wandb(cfg: WandbConfig, run_dir: Path, config: dict[str, Any]) -> Any:
    """Start or continue the W&B run of `run_dir`: its id is kept in `run_dir/wandb_run_id`, so
    a resumed or requeued process logs into the same W&B run (`resume="allow"`)."""
    try:
        import wandb
    except ImportError as exc:
        raise ConfigError(
            "logging.wandb needs the wandb package: pip install 'orl[wandb]' (or unset it)"
        ) from exc
    id_file = run_dir / WANDB_ID_FILE
    run_id = read_wandb_id(id_file)
    if not run_id:
        run_id = uuid.uuid4().hex[:16]
        atomic_write_text(run_id + "\n", id_file)
    return wandb.init(
        project=cfg.project,
        entity=cfg.entity,
        id=run_id,
        resume="allow",
        name=run_dir.name,
        dir=str(run_dir),
        config=config,
    )


def read_wandb_id(id_file: Path) -> str:
    """The W&B run id kept in the run folder ('' when there is none yet), or a one-line
    ConfigError for a file that does not hold one (W&B ids are letters, digits, '-' and '_')."""
    if not id_file.is_file():
        return ""
    with id_file.open("rb") as f:
        raw = f.read(WANDB_ID_MAX + 2)  # an id, a newline and no more
    text = raw.decode("ascii", errors="replace").strip()
    if text and not WANDB_ID.fullmatch(text):
        raise ConfigError(
            f"{id_file}: not a W&B run id (up to {WANDB_ID_MAX} letters, digits, '-' or '_'); "
            "delete the file to log into a new W&B run"
        )
    return text


class Throughput:
    """Steady-state images/s and the share of step time spent waiting for the data loader,
    measured after the first `warmup` steps of this process."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.steps = 0
        self.images = 0
        self.seconds = 0.0
        self.waiting = 0.0
        self.last = self.ready = time.perf_counter()

    def data_ready(self) -> None:
        """The step's batch has arrived."""
        self.ready = time.perf_counter()

    def step_done(self, images: int) -> None:
        now = time.perf_counter()
        self.steps += 1
        if self.steps > self.warmup:
            self.images += images
            self.seconds += now - self.last
            self.waiting += self.ready - self.last
        self.last = now

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else math.nan

    @property
    def data_wait_fraction(self) -> float:
        return self.waiting / self.seconds if self.seconds > 0 else math.nan


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a line that does not parse (a killed run's torn last line)
    is left out."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [record for _, record in _parsed_lines(text)]


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the lines up to `step`, where a resumed run restarts; a torn line is dropped."""
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    kept = [line for line, record in _parsed_lines(text) if record["step"] <= step]
    atomic_write_text("".join(line + "\n" for line in kept), path)


def last_logged_loss(run_dir: Path | None) -> float:
    """The loss of the last training line of metrics.jsonl (a resumed run that had nothing left
    to do); monitor lines carry no loss."""
    records = read_metrics(run_dir / METRICS_FILE) if run_dir is not None else []
    losses = [r["loss"] for r in records if "loss" in r]
    value = losses[-1] if losses else None
    return float(value) if isinstance(value, int | float) else math.nan


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
