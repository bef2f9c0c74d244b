"""Time the VOC07 SVM protocol on synthetic VOC-sized features (the issue's speed target).

The full protocol is 20 classes x 19 costs x 3 CV fits plus 20 final fits on 5,011 x 8,192
features, tested on 4,952 images. The features here are non-negative, L2-normalised and carry
planted class signal with VOC-like class frequencies, so liblinear sees a problem of the real size
and difficulty class. `--classes` runs a subset; the report extrapolates to all 20 and to a
16-core machine from the CPU time actually spent (robust to a shared machine).

    python -m orl.evaluate.bench_svm --classes 2 --jobs 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from joblib import cpu_count

from orl.evaluate.svm import COSTS, ClassTask, run_svm_tasks, train_labels
from orl.evaluate.voc07 import VOC_CLASSES

# Fraction of VOC07 trainval images holding each class (person ~40%, most others 3-8%).
VOC_FREQUENCY = (
    0.047, 0.049, 0.065, 0.035, 0.049, 0.036, 0.152, 0.065, 0.089, 0.027,
    0.039, 0.082, 0.059, 0.050, 0.401, 0.049, 0.019, 0.070, 0.052, 0.051,
)  # fmt: skip


def synthetic_voc(
    n_train: int = 5011, n_test: int = 4952, dim: int = 8192, signal: float = 0.6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features (float32) and VOC labels {1, -1} for a trainval and a test split."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((len(VOC_CLASSES), dim), dtype=np.float32)
    out: list[np.ndarray] = []
    for n in (n_train, n_test):
        present = rng.random((n, len(VOC_CLASSES))) < np.asarray(VOC_FREQUENCY)
        x = rng.random((n, dim), dtype=np.float32)
        x += signal * (present.astype(np.float32) @ prototypes) / np.sqrt(dim / 64)
        out += [x, np.where(present, 1, -1).astype(np.int8)]
    return out[0], out[1], out[2], out[3]


def bench_svm(
    n_classes: int = 20, jobs: int = 1, costs: Sequence[float] = COSTS, **data: Any
) -> dict[str, float]:
    """Run the protocol on the first `n_classes` classes; wall and CPU seconds, extrapolations."""
    x, y, x_test, y_test = synthetic_voc(**data)
    tasks = [ClassTask(None, train_labels(y[:, c]), y_test[:, c]) for c in range(n_classes)]
    wall, cpu = time.perf_counter(), time.process_time()
    out = run_svm_tasks(x, x_test, tasks, costs, jobs=jobs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    scale = len(VOC_CLASSES) / n_classes
    # With jobs > 1 the work runs in worker processes, so only wall time is seen here.
    core_seconds = cpu if jobs == 1 else wall * min(jobs if jobs > 0 else cpu_count(), cpu_count())
    return {
        "classes": n_classes,
        "fits": n_classes * (3 * len(costs) + 1),
        "wall_s": wall,
        "cpu_s": cpu,
        "mAP": float(np.mean(out.ap)),
        "not_converged": float(sum(not ok for ok in out.converged)),
        "full_protocol_core_s": core_seconds * scale,
        "estimate_16_cores_min": core_seconds * scale / 16 / 60,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--n-train", type=int, default=5011)
    p.add_argument("--n-test", type=int, default=4952)
    p.add_argument("--dim", type=int, default=8192)
    args = p.parse_args(argv)
    result = bench_svm(
        args.classes, args.jobs, n_train=args.n_train, n_test=args.n_test, dim=args.dim
    )
    for key, value in result.items():
        print(f"{key:>22}: {value:.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
