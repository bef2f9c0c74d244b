"""The pipeline's evaluation stage: random init vs BYOL vs ORL on labelled images."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from orl.artifacts import atomic_write_text
from orl.config import ConfigError
from orl.evaluate.inputs import load_weights
from orl.evaluate.probe import format_probe_table, probe_labelled_images
from orl.pipeline.config import EvalSpec

PROTOCOL = (
    "frozen backbone; VOC07 linear-SVM protocol on feat5 (resize 256, squash 224, L2-normalised, "
    "cost by inner 3-fold CV) with {folds}-fold outer cross-validation, and leave-one-out weighted "
    "kNN (k=20, T=0.07) on global-pooled features; mean AP over {classes} classes of {images} "
    "labelled images ({source})"
)


def labelled_images(spec: EvalSpec, base_dir: Path) -> tuple[list[Path], list[list[str]]]:
    """Images of the manifest that carry labels with the prefix, minus rare classes."""
    manifest = Path(spec.manifest)
    if not manifest.is_absolute() and not manifest.exists():
        manifest = base_dir / manifest
    if not manifest.is_file():
        raise ConfigError(f"{manifest}: evaluation manifest not found (run `orl photos` first)")
    rows = []
    with manifest.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            labels = [
                x
                for x in (row.get("labels") or "").split(";")
                if x.startswith(spec.label_prefix) and x
            ]
            if labels:
                rows.append((manifest.parent / row["path"], labels))
    counts = Counter(x for _, labels in rows for x in labels)
    keep = {c for c, n in counts.items() if n >= spec.min_per_class}
    rows = [(p, [x for x in labels if x in keep]) for p, labels in rows]
    rows = [(p, labels) for p, labels in rows if labels]
    if not rows:
        raise ConfigError(f"{manifest}: no labelled images with prefix '{spec.label_prefix}'")
    return [p for p, _ in rows], [labels for _, labels in rows]


def run_probe(
    spec: EvalSpec, base_dir: Path, checkpoints: dict[str, str], out: Path
) -> dict[str, object]:
    """Probe each checkpoint (`random:ARCH` allowed); writes `out/results.json` and returns it.

    Without labelled images (e.g. the demo photos were built without Debian packages, which hold
    the labelled set) the results say so instead of failing the pipeline.
    """
    try:
        images, labels = labelled_images(spec, base_dir)
    except ConfigError as exc:
        print(f"evaluation skipped: {exc}")
        skipped: dict[str, object] = {"protocol": f"not run: {exc}", "columns": [], "rows": []}
        atomic_write_text(json.dumps(skipped, indent=2) + "\n", out / "results.json")
        return skipped
    backbones = {name: load_weights(ckpt).build_backbone() for name, ckpt in checkpoints.items()}
    rows = probe_labelled_images(backbones, images, labels, folds=spec.folds)
    table = format_probe_table(rows)
    print(table)
    results: dict[str, object] = {
        "protocol": PROTOCOL.format(
            folds=spec.folds,
            classes=rows[0].n_classes,
            images=len(images),
            source=f"labels '{spec.label_prefix}*' of {spec.manifest}",
        ),
        "columns": ["SVM mAP", "kNN mAP"],
        "rows": [
            {"name": r.name, "metrics": {"SVM mAP": r.svm_map, "kNN mAP": r.knn_map}} for r in rows
        ],
        "table": table,
    }
    atomic_write_text(json.dumps(results, indent=2) + "\n", out / "results.json")
    return results
