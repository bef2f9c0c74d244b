"""The scene study's tables: mean +- sample std over seeds of every measure, as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from orl.pipeline.study_config import METHOD_ORDER

ROW_NAMES = {
    "random": "random init",
    "byol": "BYOL",
    "byol_multicrop": "BYOL multi-crop (2 + 4 small)",
    "orl": "ORL (selective-search boxes)",
    "orl_gt": "ORL (ground-truth boxes)",
}
EVAL_MEASURES = (
    ("scene_map", "scene mAP"),
    ("crop_top1", "object-crop top-1"),
    ("crop_mean_class_acc", "object-crop mean class acc."),
)
BASELINE_NAMES = {"color_hist": "colour histogram 6^3", "raw_pixels": "raw 16x16 pixels"}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    x = np.asarray(values, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0


def fmt_mean_std(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """`mean +- std` of `values` x `scale`; a single seed prints the bare value."""
    if not values:
        return "-"
    m, s = mean_std(values)
    if len(values) == 1:
        return f"{m * scale:.{digits}f}"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def _by_method(section: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for name, row in section.items():
        grouped.setdefault(name.split("/")[0], []).append(row)
    return grouped


Rows = tuple[tuple[str, ...], list[tuple[str, ...]]]


def eval_rows(results: dict[str, Any]) -> Rows:
    """One row per method (and baseline): each measure's mean +- std over seeds, plus compute."""
    head = ("features", *(t for _, t in EVAL_MEASURES), "pre-training min (median)", "images seen")
    rows: list[tuple[str, ...]] = []
    grouped = _by_method(results.get("runs", {}))
    for method in METHOD_ORDER:
        runs = grouped.get(method)
        if not runs:
            continue
        cells = [fmt_mean_std([r["eval"][k] for r in runs]) for k, _ in EVAL_MEASURES]
        trained = [r["train"] for r in runs if "train" in r]
        # The median: one seed's run sharing the machine with another job must not move it.
        wall = f"{np.median([t['wall_time_s'] for t in trained]) / 60:.1f}" if trained else "0"
        seen = str(int(np.mean([t["images_seen"] for t in trained]))) if trained else "0"
        seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
        rows.append((f"{ROW_NAMES[method]} ({seeds})", *cells, wall, seen))
    baselines = (results.get("baselines") or {}).get("baselines", {})
    for key, name in BASELINE_NAMES.items():
        if key in baselines:
            cells = [fmt_mean_std([baselines[key][k]]) for k, _ in EVAL_MEASURES]
            rows.append((name, *cells, "0", "0"))
    return head, rows


# `orl eval corr` measures in reading order: (key, label, is a share in [0, 1]).
CORR_MEASURES = (
    ("rois_on_object", "kept RoIs covering an object (IoU >= 0.5)", True),
    ("objects_recalled", "objects covered by some kept RoI", True),
    ("pairs_both_objects", "pairs: both boxes on objects", True),
    ("random_kept_pairs_both_objects", "  random pairs of kept boxes", True),
    ("random_boxes_pairs_both_objects", "  random boxes of the same sizes", True),
    ("pairs_same_category", "pairs: same category", True),
    ("random_kept_pairs_same_category", "  random pairs of kept boxes", True),
    ("random_boxes_pairs_same_category", "  random boxes of the same sizes", True),
    ("pairs_same_instance", "pairs: same object instance", True),
    ("random_kept_pairs_same_instance", "  random pairs of kept boxes", True),
    ("knn_same_category", "image kNN: neighbour shares a category", True),
    ("random_images_same_category", "  random images", True),
    ("n_boxes", "kept RoIs (count)", False),
    ("wall_time_s", "stage-2 wall time (s)", False),
)


def corr_rows(results: dict[str, Any]) -> Rows:
    """Stage-2 quality per box source, each measure beside its chance references."""
    grouped = _by_method(results.get("corr", {}))
    methods = [m for m in METHOD_ORDER if m in grouped]
    rows = []
    for key, label, share in CORR_MEASURES:
        if not any(key in r for m in methods for r in grouped[m]):
            continue
        scale, digits = (100.0, 1) if share else (1.0, 0)
        cells = [
            fmt_mean_std([r[key] for r in grouped[m] if key in r], scale, digits) for m in methods
        ]
        rows.append((label, *cells))
    return ("measure", *(ROW_NAMES[m] for m in methods)), rows


def per_class_rows(results: dict[str, Any]) -> Rows:
    """Scene AP per class for each method (mean over seeds): where the rows differ."""
    grouped = _by_method(results.get("runs", {}))
    methods = [m for m in METHOD_ORDER if m in grouped]
    classes = sorted(grouped[methods[0]][0]["eval"].get("scene_ap", {})) if methods else []
    rows = []
    for c in classes:
        cells = [fmt_mean_std([r["eval"]["scene_ap"][c] for r in grouped[m]]) for m in methods]
        rows.append((c, *cells))
    return ("class", *(ROW_NAMES[m] for m in methods)), rows


def markdown_table(table: Rows) -> str:
    head, rows = table
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- study tables: begin (written by benchmarks/scenes_study.py) -->", "<!-- end -->"


def study_markdown(results: dict[str, Any], command: str) -> str:
    """The generated part of docs/results/scenes.md: setup, tables, compute, command."""
    cfg = results.get("config", {})
    sc = cfg.get("scenes", {})
    total = results.get("wall_time_s")
    parts = [
        f"Scenes: {sc.get('train')} train / {sc.get('test')} test, {sc.get('categories')} "
        f"categories, {sc.get('size')} px, scene seed {sc.get('seed')}; training seeds "
        f"{cfg.get('seeds')}; data fingerprint `{str(results.get('data_fingerprint', ''))[:16]}`."
        + (f" Whole study: {total / 60:.1f} min." if isinstance(total, int | float) else ""),
        "",
        "Test split, frozen features, linear SVMs trained on the train split (mean ± sample std "
        "over seeds, in %):",
        "",
        markdown_table(eval_rows(results)),
        "Stage-2 quality on the train split (`orl eval corr`; shares in %, mean ± std over seeds):",
        "",
        markdown_table(corr_rows(results)),
        "Scene AP per class (mean ± std over seeds, %):",
        "",
        markdown_table(per_class_rows(results)),
        "Command:",
        "",
        f"    {command}",
    ]
    return "\n".join(parts) + "\n"


def splice(document: str, generated: str) -> str:
    """Replace the generated block of `document` (or append one), keeping the prose around it."""
    block = f"{BEGIN}\n{generated}{END}"
    if BEGIN in document and END in document.split(BEGIN, 1)[1]:
        head, rest = document.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    return document.rstrip("\n") + ("\n\n" if document.strip() else "") + block + "\n"
