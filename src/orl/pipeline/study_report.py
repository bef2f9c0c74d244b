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
    "supervised": "supervised, scene labels",
    "supervised_instances": "supervised, object-crop instance labels",
}
# Every protocol of `orl eval scenes`, in reading order; `<key>_gray` is the same on grayscale
# images. The instance protocol needs the benchmark's test_seen split.
EVAL_MEASURES = (
    ("scene_map", "scene mAP"),
    ("crop_top1", "object-crop top-1"),
    ("crop_mean_class_acc", "object-crop mean class acc."),
    ("instance_r1", "instance R@1"),
    ("instance_map", "instance mAP"),
    ("instance_top1", "instance top-1 (linear)"),
)
SUPERVISED_ROWS = ("supervised", "supervised_instances")
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


def _measure(row: dict[str, Any], key: str, gray: bool) -> float | None:
    source = row.get("gray", {}) if gray else row
    value = source.get(key)
    return float(value) if isinstance(value, int | float) else None


def protocol_values(
    results: dict[str, Any], gray: bool = False
) -> dict[str, dict[str, list[float]]]:
    """measure -> row -> one value per seed (fractions), for every measure the study has."""
    out: dict[str, dict[str, list[float]]] = {}
    grouped = _by_method(results.get("runs", {}))
    for key, _ in EVAL_MEASURES:
        for method in METHOD_ORDER:
            values = [
                _measure(r["eval"], key, gray) for r in grouped.get(method, []) if "eval" in r
            ]
            kept = [v for v in values if v is not None]
            if kept:
                out.setdefault(key, {})[method] = kept
    return out


def eval_rows(results: dict[str, Any], gray: bool = False) -> Rows:
    """One row per method (and baseline): each measure's mean +- std over seeds, plus compute."""
    values = protocol_values(results, gray)
    measures = [(k, t) for k, t in EVAL_MEASURES if k in values]
    head = ("features", *(t for _, t in measures), "pre-training min (median)", "images seen")
    rows: list[tuple[str, ...]] = []
    grouped = _by_method(results.get("runs", {}))
    for method in METHOD_ORDER:
        runs = grouped.get(method)
        if not runs:
            continue
        cells = [fmt_mean_std(values[k].get(method, [])) for k, _ in measures]
        trained = [r["train"] for r in runs if "train" in r]
        # The median: one seed's run sharing the machine with another job must not move it.
        wall = f"{np.median([t['wall_time_s'] for t in trained]) / 60:.1f}" if trained else "0"
        seen = str(int(np.mean([t["images_seen"] for t in trained]))) if trained else "0"
        seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
        rows.append((f"{ROW_NAMES[method]} ({seeds})", *cells, wall, seen))
    baselines = (results.get("baselines") or {}).get("baselines", {})
    for key, name in BASELINE_NAMES.items():
        base = baselines.get(f"{key}_gray" if gray else key)
        if base is not None:
            cells = [fmt_mean_std([base[k]]) if k in base else "-" for k, _ in measures]
            rows.append((name, *cells, "0", "0"))
    return head, rows


def headroom_rows(results: dict[str, Any], gray: bool = False) -> Rows:
    """Per measure: the floor (random init), the ceiling (the better supervised row), their
    headroom, and each self-supervised row's margin over the floor with whether the +-2 std
    bands are apart (means minus/plus 2 sample std, over seeds)."""
    values = protocol_values(results, gray)
    learned = [
        m
        for m in ("byol", "byol_multicrop", "orl", "orl_gt")
        if any(m in v for v in values.values())
    ]
    head = (
        "measure",
        "floor: random",
        "ceiling: supervised",
        "headroom",
        *(f"{ROW_NAMES[m]} - floor" for m in learned),
    )
    rows: list[tuple[str, ...]] = []
    for key, title in EVAL_MEASURES:
        if key not in values or "random" not in values[key]:
            continue
        floor = values[key]["random"]
        ceilings = [values[key][r] for r in SUPERVISED_ROWS if r in values[key]]
        ceiling = max(ceilings, key=lambda v: float(np.mean(v))) if ceilings else []
        cells = [fmt_mean_std(floor), fmt_mean_std(ceiling)]
        cells.append(f"{100 * (np.mean(ceiling) - np.mean(floor)):+.1f}" if ceiling else "-")
        for m in learned:
            if m not in values[key]:
                cells.append("-")
                continue
            margin = 100 * (np.mean(values[key][m]) - np.mean(floor))
            cells.append(f"{margin:+.1f}{' (apart)' if bands_apart(values[key][m], floor) else ''}")
        rows.append((title, *cells))
    return head, rows


def bands_apart(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether the mean +- 2 sample std bands of two seed sets do not overlap (>= 2 seeds each)."""
    if len(a) < 2 or len(b) < 2:
        return False
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return ma - 2 * sa > mb + 2 * sb or mb - 2 * sb > ma + 2 * sa


def scenes_json(
    results: dict[str, Any], peer_parity: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`docs/results/scenes.json`: per protocol (`<measure>` and `<measure>_gray`) and row, the
    mean, sample std and number of seeds, in percent; the peer-parity summaries as given."""
    protocols: dict[str, dict[str, dict[str, Any]]] = {}
    for gray in (False, True):
        for key, rows in protocol_values(results, gray).items():
            name = f"{key}_gray" if gray else key
            for row, v in rows.items():
                m, sd = mean_std(v)
                protocols.setdefault(name, {})[row] = {
                    "mean": round(100 * m, 2),
                    "std": round(100 * sd, 2) if len(v) > 1 else None,
                    "n": len(v),
                }
    return {"protocols": protocols, "peer_parity": peer_parity or {}}


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


PEER_MEASURES = (
    "scene_map", "crop_top1", "instance_r1", "instance_top1", "scene_map_gray", "instance_r1_gray"
)  # fmt: skip


def peer_rows(name: str, summary: dict[str, Any]) -> Rows:
    """orl's BYOL and lightly's at one configuration: mean +- std per measure, and whether the
    two agree within 2 pooled sample std (sqrt of the mean of both variances)."""
    measures = [m for m in PEER_MEASURES if m in summary.get("orl", {})]
    head = (f"`{name}`", *measures)
    rows: list[tuple[str, ...]] = []
    for impl in ("orl", "lightly"):
        cells = []
        for m in measures:
            v = summary.get(impl, {}).get(m)
            cells.append("-" if v is None else f"{v['mean']:.1f} ± {v['std'] or 0:.1f}")
        rows.append(
            (
                f"{impl} BYOL (n = {summary.get(impl, {}).get(measures[0], {}).get('n', 0)})"
                if measures
                else impl,
                *cells,
            )
        )
    agree = []
    for m in measures:
        a, b = summary["orl"][m], summary["lightly"].get(m)
        if b is None or a["std"] is None or b["std"] is None:
            agree.append("-")
            continue
        pooled = float(np.sqrt((a["std"] ** 2 + b["std"] ** 2) / 2))
        diff = a["mean"] - b["mean"]
        agree.append(f"{diff:+.1f} ({'within' if abs(diff) <= 2 * pooled else 'beyond'} 2 std)")
    rows.append(("orl - lightly", *agree))
    return head, rows


def study_markdown(
    results: dict[str, Any], command: str, peers: dict[str, Any] | None = None
) -> str:
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
        "Test split, frozen features, linear classifiers trained on the train split (mean ± "
        "sample std over seeds, in %); the instance columns query the test_seen split's object "
        "crops against the train split's:",
        "",
        markdown_table(eval_rows(results)),
        "The same on grayscale images (colour taken away):",
        "",
        markdown_table(eval_rows(results, gray=True)),
        "Floor, ceiling and headroom per protocol; each self-supervised row's margin over the "
        "floor, '(apart)' when the mean ± 2 std bands over seeds do not overlap:",
        "",
        markdown_table(headroom_rows(results)),
        "The same on grayscale images:",
        "",
        markdown_table(headroom_rows(results, gray=True)),
        "Stage-2 quality on the train split (`orl eval corr`; shares in %, mean ± std over seeds):",
        "",
        markdown_table(corr_rows(results)),
        "Scene AP per class (mean ± std over seeds, %):",
        "",
        markdown_table(per_class_rows(results)),
        *peer_parts(peers or {}),
        "Command:",
        "",
        f"    {command}",
    ]
    return "\n".join(parts) + "\n"


def peer_parts(peers: dict[str, Any]) -> list[str]:
    """Peer parity tables (orl's BYOL vs lightly's at each configuration), or why skipped."""
    parts: list[str] = []
    for name, summary in peers.items():
        if "skipped" in summary:
            parts += [f"Peer parity `{name}`: skipped ({summary['skipped']}).", ""]
            continue
        overrides = ", ".join(f"`{o}`" for o in summary.get("overrides", [])) or "none"
        parts += [
            f"Peer parity `{name}` (the preset with {overrides}; mean ± sample std over seeds):",
            "",
            markdown_table(peer_rows(name, summary)),
        ]
    return parts


def splice(document: str, generated: str) -> str:
    """Replace the generated block of `document` (or append one), keeping the prose around it."""
    block = f"{BEGIN}\n{generated}{END}"
    if BEGIN in document and END in document.split(BEGIN, 1)[1]:
        head, rest = document.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    return document.rstrip("\n") + ("\n\n" if document.strip() else "") + block + "\n"
