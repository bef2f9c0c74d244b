"""The linear SVM of the VOC07 protocols (Goyal et al. 2019; sec. 4.1, Tables 1 and 2).

One LinearSVC per class on L2-normalised features, with the benchmark's exact solver settings, and
the cost chosen per class by 3-fold cross-validated average precision. Work is split into
independent (class, cost) jobs run by joblib; each job is one small pure function.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from orl.evaluate.average_precision import voc_average_precision
from orl.progress import progress

# `parse_cost_list` of the benchmark: "1.0,10.0,100.0" plus 0.5**k for k in range(4, 20). The order
# matters only for ties in CV AP, which `np.argmax` breaks towards the earlier cost, as there.
COSTS: tuple[float, ...] = (1.0, 10.0, 100.0, *(0.5**k for k in range(4, 20)))
MAX_ITER = 2000


def make_svm(cost: float) -> LinearSVC:
    """The benchmark's classifier; `random_state` fixed so that reruns give identical numbers."""
    return LinearSVC(
        C=cost,
        class_weight={1: 2, -1: 1},
        penalty="l2",
        loss="squared_hinge",
        dual=True,
        tol=1e-4,
        max_iter=MAX_ITER,
        intercept_scaling=1.0,
        random_state=0,
    )


def train_labels(labels: np.ndarray) -> np.ndarray:
    """VOC labels {1, -1, 0} -> SVM targets {1, -1}: difficult-only images are negatives."""
    return np.where(labels == 1, 1, -1).astype(np.int32)


def fit_svm(x: np.ndarray, y: np.ndarray, cost: float) -> tuple[LinearSVC, bool]:
    """Fit one class; also say whether liblinear converged within `MAX_ITER`."""
    clf = make_svm(cost)
    with warnings.catch_warnings():
        # Large costs hit max_iter on separable data, as in the benchmark; we count them instead.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf, int(np.max(clf.n_iter_)) < MAX_ITER


def cv_folds(y: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`cross_val_score(cv=3)`'s split for a classifier: StratifiedKFold without shuffling."""
    return list(StratifiedKFold(n_folds).split(np.zeros(len(y)), y))


def cv_average_precision(x: np.ndarray, y: np.ndarray, cost: float, n_folds: int) -> float:
    """Mean over folds of sklearn's `average_precision` of the decision values (as Goyal)."""
    aps = []
    for train, val in cv_folds(y, n_folds):
        clf, _ = fit_svm(x[train], y[train], cost)
        aps.append(average_precision_score(y[val], clf.decision_function(x[val])))
    return float(np.mean(aps))


def choose_cost(cv_ap: Sequence[float], costs: Sequence[float]) -> float:
    """The cost with the best CV AP; the first one on ties."""
    return float(costs[int(np.argmax(cv_ap))])


def _rows(x: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    # `None` = every row: the full protocol then fits on the (memory-mapped) matrix without a copy.
    return x if rows is None else x[rows]


def _cv_job(
    x: np.ndarray, rows: np.ndarray | None, y: np.ndarray, cost: float, folds: int
) -> float:
    return cv_average_precision(_rows(x, rows), y, cost, folds)


def _test_job(
    x: np.ndarray,
    rows: np.ndarray | None,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    cost: float,
) -> tuple[float, bool]:
    clf, converged = fit_svm(_rows(x, rows), y, cost)
    return voc_average_precision(y_test, clf.decision_function(x_test)), converged


@dataclass(frozen=True)
class ClassTask:
    """One binary problem: training rows of the feature matrix (None = all), their {1, -1} targets,
    and the VOC labels {1, -1, 0} of the test set."""

    rows: np.ndarray | None
    y: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class SvmOutcome:
    """Per task: test AP, chosen cost, its CV AP per cost (empty without CV), converged."""

    ap: list[float]
    cost: list[float]
    cv_ap: list[list[float]]
    converged: list[bool]


def _parallel(jobs: int, calls: Sequence[Any], desc: str) -> list[Any]:
    """joblib's results in order, counted by a progress bar as they arrive."""
    results = Parallel(n_jobs=jobs, return_as="generator")(calls)
    return list(progress(results, total=len(calls), desc=desc, unit="fit"))


def test_ap_per_cost(
    x: np.ndarray,
    x_test: np.ndarray,
    tasks: Sequence[ClassTask],
    costs: Sequence[float],
    jobs: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit every task with every cost on all its rows: test AP and convergence, [task, cost].

    The original low-shot benchmark scores every cost on the test set and picks one afterwards
    (`lowshot.original_cost_rule`).
    """
    flat = _parallel(
        jobs,
        [delayed(_test_job)(x, t.rows, t.y, x_test, t.y_test, c) for t in tasks for c in costs],
        "SVM fits",
    )
    shape = (len(tasks), len(costs))
    ap = np.array([a for a, _ in flat], dtype=np.float64).reshape(shape)
    return ap, np.array([ok for _, ok in flat], dtype=bool).reshape(shape)


def run_svm_tasks(
    x: np.ndarray,
    x_test: np.ndarray,
    tasks: Sequence[ClassTask],
    costs: Sequence[float] = COSTS,
    n_folds: int = 3,
    fallback_cost: float = 1.0,
    jobs: int = 1,
) -> SvmOutcome:
    """Choose each task's cost, fit on all its rows, score on the test set.

    Cost selection is k-fold CV AP on the training rows (folds = min(n_folds, positives)); a task
    with a single positive cannot be cross-validated and uses `fallback_cost`.
    """
    folds = [min(n_folds, int((t.y == 1).sum())) for t in tasks]
    cv_jobs = [(i, c) for i, t in enumerate(tasks) if folds[i] >= 2 for c in costs]
    cv_flat = _parallel(
        jobs,
        [delayed(_cv_job)(x, tasks[i].rows, tasks[i].y, c, folds[i]) for i, c in cv_jobs],
        "SVM cost CV",
    )
    cv_ap: list[list[float]] = [[] for _ in tasks]
    for (i, _), value in zip(cv_jobs, cv_flat, strict=True):
        cv_ap[i].append(value)
    chosen = [
        choose_cost(cv_ap[i], costs) if cv_ap[i] else fallback_cost for i in range(len(tasks))
    ]
    fitted = _parallel(
        jobs,
        [
            delayed(_test_job)(x, t.rows, t.y, x_test, t.y_test, c)
            for t, c in zip(tasks, chosen, strict=True)
        ],
        "SVM fits",
    )
    return SvmOutcome([a for a, _ in fitted], chosen, cv_ap, [ok for _, ok in fitted])
