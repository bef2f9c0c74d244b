"""What resume restores: the named state of a run (DINO's run variables) and the RNG streams, and
the check that a checkpoint belongs to the run being resumed."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from orl.checkpoint import CheckpointError
from orl.config import ConfigError, config_from_dict, to_dict
from orl.train.config import PretrainConfig


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass
class RunState:
    """The named state a checkpoint holds; `KEYS` is the one list that saving writes and resuming
    reads back. `objects` are the networks, the optimizer and the AMP scaler (saved through their
    state dicts: `online`, `target` and `queue` where the method has them); the rest are the run's
    variables and the RNG streams."""

    KEYS: ClassVar[tuple[str, ...]] = (
        *("online", "target", "queue", "optimizer", "scaler"),
        *("step", "images_seen", "wall_time_s", "skipped", "rng"),
    )

    objects: dict[str, Stateful]
    step: int = 0  # optimizer steps done, the global step of the next batch
    images_seen: int = 0
    wall_time_s: float = 0.0  # training time of the earlier processes of this run
    skipped: dict[str, str] = field(default_factory=dict)  # unusable file -> reason
    started: float = field(default_factory=time.perf_counter)  # of this process; not saved

    def elapsed(self) -> float:
        """Training time of the whole run so far, resumed processes included."""
        return self.wall_time_s + time.perf_counter() - self.started

    def state_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "step": self.step,
            "images_seen": self.images_seen,
            "wall_time_s": self.elapsed(),
            "skipped": sorted(self.skipped.items()),
            "rng": rng_state(),
            **{name: obj.state_dict() for name, obj in self.objects.items()},
        }
        return {key: values[key] for key in self.KEYS if key in values}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        for key in self.KEYS:
            if key in self.objects:
                self.objects[key].load_state_dict(saved[key])
        set_rng_state(saved["rng"])
        self.step, self.images_seen = int(saved["step"]), int(saved["images_seen"])
        self.wall_time_s, self.skipped = float(saved["wall_time_s"]), dict(saved["skipped"])


# Settings every resumed run must keep; each method adds its own (`MethodParts.resume_settings`).
RESUME_SETTINGS = (
    *("arch", "method", "batch_size", "epochs", "seed", "precision"),
    *("model", "augment", "optim.optimizer"),
)


def check_resumable(
    ckpt: dict[str, Any], cfg: PretrainConfig, fingerprint: str, settings: tuple[str, ...]
) -> None:
    """Refuse, in one line, to resume a run with another data set or other `settings` (dotted
    names). The checkpoint's settings are read as today's config, so a setting it predates counts
    as its default."""
    if ckpt.get("data_fingerprint") != fingerprint:
        raise CheckpointError(
            "the checkpoint was trained on another data set (fingerprint differs); "
            "use the same `data` or a new --out"
        )
    try:
        old = to_dict(config_from_dict(PretrainConfig, ckpt.get("config", {}), "checkpoint"))
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"cannot resume: its settings do not read ({exc})") from exc
    new = to_dict(cfg)
    for key in settings:
        if _lookup(old, key) != _lookup(new, key):
            raise CheckpointError(
                f"cannot resume: setting '{key}' differs from the interrupted run; "
                "keep it or start a new --out"
            )


def _lookup(settings: dict[str, Any], dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states in a `weights_only`-loadable form."""
    py = random.getstate()
    np_state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            np_state[0],
            torch.from_numpy(np.asarray(np_state[1]).astype(np.int64)),
            *np_state[2:],
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state(
        (np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:])  # type: ignore[arg-type]
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
