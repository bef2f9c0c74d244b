"""The pipeline report: one self-contained HTML page and a Markdown twin, from the work folder.

Contents: the data-set fingerprint and each stage's status, wall time and images/s; training
curves of stage 1 (BYOL, sec. 3.2) and stage 3 (ORL, sec. 3.3) with every loss term and the
learning rate; stage-2 statistics (sec. 3.1) and a gallery of top-ranked pairs (Figure 3); BYOL vs
ORL attention maps (Figure 4); the evaluation table (random init, BYOL, ORL) with its protocol;
the resolved configurations. A part that has not run is written as "not run". See docs/report.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from orl.artifacts import atomic_write_text
from orl.checkpoint import CheckpointError
from orl.data.decode import UnusableImage, load_rgb
from orl.discover.store import FLAG_FALLBACK, FLAG_SKIPPED, CorrespondenceStore, StoreError
from orl.pipeline.layout import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EVAL_DIR,
    METRICS_FILE,
    PIPELINE_FILE,
    RESULTS_FILE,
    STAGE1_DIR,
    STAGE2_DIR,
    STAGE3_DIR,
    STORE_META_FILE,
    SUMMARY_FILE,
    TIMING_FILE,
)
from orl.train.logs import read_metrics
from orl.viz.attention import DEFAULT_SIZE, attention_figure
from orl.viz.pairs import best_pairs, near_duplicates, pairs_gallery
from orl.viz.report_document import (
    Block,
    Code,
    Figure,
    Heading,
    Table,
    Text,
    render_html,
    render_markdown,
)
from orl.viz.report_inputs import metric_series, number, read_json, read_text
from orl.viz.report_plots import Series, histogram, line_plot
from orl.viz.report_scenes import scenes_blocks

TITLE = "ORL pipeline report"
MD_FILES_DIR = "report_files"
NOT_RUN = "not run"
LOSS_KEYS = ("loss", "loss_image", "loss_intra", "loss_inter")
STAGE_TITLES = {
    STAGE1_DIR: "Stage 1: image-level BYOL",
    STAGE2_DIR: "Stage 2: correspondence discovery",
    STAGE3_DIR: "Stage 3: object-level ORL",
    EVAL_DIR: "Evaluation",
}
ATTENTION_LABELS = {STAGE1_DIR: "BYOL (stage 1)", STAGE3_DIR: "ORL (stage 3)"}


def _fmt(value: float | None, digits: int = 4) -> str:
    """A table cell: whole numbers in full (step and image counts), others to `digits` digits."""
    if value is None:
        return "-"
    if math.isfinite(value) and value == round(value) and abs(value) >= 1:
        return str(round(value))
    return f"{value:.{digits}g}"


def _open_store(work_dir: Path) -> CorrespondenceStore | str:
    """The stage-2 store, or why there is none ("not run" or the error)."""
    if not (work_dir / STAGE2_DIR / STORE_META_FILE).is_file():
        return NOT_RUN
    try:
        return CorrespondenceStore.open(work_dir / STAGE2_DIR)
    except StoreError as exc:
        return f"unreadable ({exc})"


def _recorded(pipeline: dict[str, Any], stage: str) -> dict[str, Any]:
    """What pipeline.json says about `stage` ({} when nothing)."""
    stages = pipeline.get("stages")
    entry = stages.get(stage) if isinstance(stages, dict) else None
    return entry if isinstance(entry, dict) else {}


def _stage_status(work_dir: Path, stage: str, pipeline: dict[str, Any]) -> str:
    recorded = _recorded(pipeline, stage).get("status")
    if isinstance(recorded, str):
        return recorded
    done_file = {
        STAGE1_DIR: SUMMARY_FILE,
        STAGE2_DIR: STORE_META_FILE,
        STAGE3_DIR: SUMMARY_FILE,
        EVAL_DIR: RESULTS_FILE,
    }[stage]
    if (work_dir / stage / done_file).is_file():
        return "done"
    return "incomplete" if (work_dir / stage).is_dir() else NOT_RUN


def overview_blocks(work_dir: Path, pipeline: dict[str, Any], store_fp: str | None) -> list[Block]:
    """Fingerprint, data sources and the status, wall time and throughput of every stage."""
    fp = pipeline.get("data_fingerprint")
    blocks: list[Block] = [Heading("Data and stages")]
    blocks.append(Text(f"Work folder: {work_dir}"))
    blocks.append(Text(f"Data-set fingerprint: {fp if fp else 'not recorded'}", missing=not fp))
    if store_fp is not None and fp and store_fp != fp:
        blocks.append(Text(f"The stage-2 store was built on another data set ({store_fp}).", True))
    sources = pipeline.get("data")
    if isinstance(sources, list) and sources:
        blocks.append(Text("Data sources: " + ", ".join(str(s) for s in sources)))
    rows = []
    for stage in STAGE_TITLES:
        timing_file = SUMMARY_FILE if stage in (STAGE1_DIR, STAGE3_DIR) else TIMING_FILE
        timing = read_json(work_dir / stage / timing_file).data
        wall = number(timing, "wall_time_s")
        if wall is None:
            wall = number(_recorded(pipeline, stage), "wall_time_s")
        rows.append(
            (
                STAGE_TITLES[stage],
                _stage_status(work_dir, stage, pipeline),
                _fmt(wall, 5),
                _fmt(number(timing, "images_per_s")),
            )
        )
    blocks.append(
        Table(
            ("stage", "status", "wall time (s)", "images/s"),
            tuple(rows),
            (False, False, True, True),
        )
    )
    return blocks


MONITOR_KEYS = ("knn_top1", "knn_top5", "knn_map")  # `monitor:` lines of metrics.jsonl


def loss_series(records: list[dict[str, Any]]) -> list[Series]:
    """One series per loss term any record logged: the total, then image, intra and inter RoI."""
    logged = {key for r in records for key in r}
    return [Series(k, *metric_series(records, k)) for k in LOSS_KEYS if k in logged]


def training_blocks(work_dir: Path, stage: str) -> list[Block]:
    """Loss terms and learning rate against the step, and the run's summary."""
    run = work_dir / stage
    blocks: list[Block] = [Heading(STAGE_TITLES[stage])]
    records = read_metrics(run / METRICS_FILE)
    summary = read_json(run / SUMMARY_FILE)
    if not records and summary.data is None:
        return [*blocks, Text(NOT_RUN if not run.is_dir() else "no metrics logged yet", True)]
    if summary.data is not None:
        keys = ("final_loss", "steps", "images_seen", "skipped", "data_wait_fraction")
        row = tuple(_fmt(number(summary.data, k)) for k in keys)
        blocks.append(Table(keys, (row,), (True,) * len(keys)))
    else:
        blocks.append(Text(f"summary.json: {summary.problem} (the run has not finished)", True))
    training = [r for r in records if "loss" in r]  # the monitor's lines carry no loss
    if training:
        losses = loss_series(training)
        title = f"{stage}: loss terms"
        blocks.append(Figure(f"{stage}_loss", line_plot(losses, title, "step"), title))
        title = f"{stage}: learning rate"
        lr = [Series("lr", *metric_series(training, "lr"))]
        blocks.append(Figure(f"{stage}_lr", line_plot(lr, title, "step"), title))
    monitor = [r for r in records if "knn_top1" in r]
    if monitor:
        shown = [k for k in MONITOR_KEYS if any(k in r for r in monitor)]
        curves = [Series(k, *metric_series(monitor, k)) for k in shown]
        title = f"{stage}: online kNN monitor"
        blocks.append(Figure(f"{stage}_monitor", line_plot(curves, title, "step"), title))
    return blocks


def store_blocks(
    store: CorrespondenceStore | str, image_paths: Sequence[str] | None, shown: int
) -> list[Block]:
    """Counts and histograms of the store, and a gallery of its `shown` best pairs (Figure 3)."""
    blocks: list[Block] = [Heading(STAGE_TITLES[STAGE2_DIR])]
    if isinstance(store, str):
        return [*blocks, Text(store, True)]
    flags = np.asarray(store.array("flags"))
    used = (flags & FLAG_SKIPPED) == 0
    boxes = np.diff(np.asarray(store.array("box_offsets")))
    pairs = np.diff(np.asarray(store.array("pair_offsets"))).reshape(store.num_images, store.k)
    sims = np.asarray(store.array("pair_sims"), dtype=np.float32)
    counts = (
        ("images", store.num_images),
        ("neighbours per image (K)", store.k),
        ("boxes", int(boxes.sum())),
        ("pairs", int(pairs.sum())),
        ("skipped (undecodable)", int((~used).sum())),
        ("box fallback", int(((flags & FLAG_FALLBACK) != 0).sum())),
    )
    blocks.append(Table(("", "count"), tuple((k, str(v)) for k, v in counts), (False, True)))
    blocks.append(
        Figure(
            "stage2_boxes",
            histogram(boxes[used], "boxes per image", "boxes"),
            "Boxes per image after the filter (skipped images left out).",
        )
    )
    blocks.append(
        Figure(
            "stage2_pairs",
            histogram(pairs.sum(axis=1)[used], "pairs per image", "pairs"),
            "RoI pairs per query image, summed over its K neighbours.",
        )
    )
    if np.isfinite(sims).any():
        hist = histogram(sims, "pair cosine similarity", "cosine similarity")
        blocks.append(Figure("stage2_similarity", hist, "Cosine similarity of every stored pair."))
    else:
        blocks.append(Text("Pair similarities were not stored (imported store).", True))
    blocks.append(Heading("Top-ranked correspondence pairs (Figure 3)", 3))
    if image_paths is None:
        blocks.append(Text("No image paths given: gallery not drawn.", True))
    elif len(image_paths) != store.num_images:
        msg = f"{len(image_paths)} image paths for a store of {store.num_images} images: not drawn."
        blocks.append(Text(msg, True))
    else:
        picks = best_pairs(store, shown, near_duplicates(image_paths))
        caption = (
            "Query box (red) and neighbour box (green), one pair per image pair, best first; "
            "pairs of near-identical photos last."
        )
        if picks:
            blocks.append(Figure("stage2_top_pairs", pairs_gallery(image_paths, picks), caption))
        else:
            blocks.append(Text("No pair to show (every query image was skipped).", True))
    return blocks


def pick_photos(
    image_paths: Sequence[str], store: CorrespondenceStore | str, count: int
) -> list[str]:
    """Up to `count` evenly spaced photos that decode (and that stage 2 did not skip)."""
    usable = list(range(len(image_paths)))
    if not isinstance(store, str) and store.num_images == len(image_paths):
        usable = [i for i in usable if not store.is_skipped(i)]
    picks: list[str] = []
    spaced = np.linspace(0, len(usable) - 1, num=min(count, len(usable))).round().astype(int)
    for i in dict.fromkeys(spaced.tolist()):
        try:
            load_rgb(image_paths[usable[i]], max_side=64)
        except UnusableImage:
            continue
        picks.append(image_paths[usable[i]])
    return picks


def attention_blocks(
    work_dir: Path,
    image_paths: Sequence[str] | None,
    store: CorrespondenceStore | str,
    size: int,
    photos: int,
) -> list[Block]:
    """BYOL vs ORL attention maps on the same `photos` photos (Figure 4)."""
    blocks: list[Block] = [Heading("Attention maps: BYOL vs ORL (Figure 4)")]
    checkpoints = [
        (label, work_dir / stage / CHECKPOINT_FILE)
        for stage, label in ATTENTION_LABELS.items()
        if (work_dir / stage / CHECKPOINT_FILE).is_file()
    ]
    chosen = pick_photos(image_paths, store, photos) if image_paths else []
    if not checkpoints:
        return [*blocks, Text(f"{NOT_RUN}: no stage-1 or stage-3 checkpoint yet.", True)]
    if not chosen:
        return [*blocks, Text("No decodable photo given: attention maps not drawn.", True)]
    try:
        fig = attention_figure(checkpoints, chosen, size)
    except CheckpointError as exc:
        return [*blocks, Text(f"unreadable checkpoint ({exc})", True)]
    caption = (
        "Mean over channels of the online backbone's layer-4 activation, min-max normalised, "
        f"upsampled to the photo (input {size} x {size}); jet colours, alpha 0.5."
    )
    missing = [lab for st, lab in ATTENTION_LABELS.items() if lab not in dict(checkpoints)]
    if missing:
        blocks.append(Text(f"{', '.join(missing)}: {NOT_RUN}.", True))
    return [*blocks, Figure("attention", fig, caption)]


def evaluation_blocks(work_dir: Path) -> list[Block]:
    """The results table (random init, BYOL, ORL) under the protocol it was measured with."""
    blocks: list[Block] = [Heading(STAGE_TITLES[EVAL_DIR])]
    results = read_json(work_dir / EVAL_DIR / RESULTS_FILE)
    if results.data is None:
        return [*blocks, Text(results.problem, True)]
    blocks.append(Text(f"Protocol: {results.data.get('protocol', 'not recorded')}"))
    columns = [str(c) for c in results.data.get("columns", [])]
    rows = []
    for row in results.data.get("rows", []):
        metrics = row.get("metrics", {}) if isinstance(row, dict) else {}
        values = tuple(_fmt(number(metrics, c)) for c in columns)
        rows.append((str(row.get("name", "?")) if isinstance(row, dict) else "?", *values))
    blocks.append(Table(("model", *columns), tuple(rows), (False, *(True,) * len(columns))))
    return blocks


def config_blocks(work_dir: Path, pipeline_text: str | None) -> list[Block]:
    """The resolved configuration of every stage, verbatim."""
    blocks: list[Block] = [Heading("Configurations")]
    sources = (
        (STAGE1_DIR, CONFIG_FILE, "yaml"),
        (STAGE2_DIR, STORE_META_FILE, "json"),
        (STAGE3_DIR, CONFIG_FILE, "yaml"),
        (".", PIPELINE_FILE, "json"),
    )
    for folder, name, language in sources:
        path = work_dir / folder / name
        blocks.append(Heading(str(Path(folder) / name), 3))
        text = pipeline_text if name == PIPELINE_FILE else read_text(path)
        blocks.append(Code(text, language) if text is not None else Text(NOT_RUN, True))
    return blocks


def report_blocks(
    work_dir: Path,
    image_paths: Sequence[str] | None,
    attention_size: int = DEFAULT_SIZE,
    photos: int = 4,
    pairs: int = 8,
) -> list[Block]:
    """Every section of the report, in reading order: `photos` photos with attention maps and
    the `pairs` best correspondence pairs (`report_photos`, `report_pairs` of `orl run`)."""
    pipeline_file = read_json(work_dir / PIPELINE_FILE)
    pipeline = pipeline_file.data or {}
    store = _open_store(work_dir)
    store_fp = None if isinstance(store, str) else store.fingerprint
    pipeline_text = json.dumps(pipeline, indent=2) if pipeline_file.data is not None else None
    return [
        *overview_blocks(work_dir, pipeline, store_fp),
        *training_blocks(work_dir, STAGE1_DIR),
        *store_blocks(store, image_paths, pairs),
        *training_blocks(work_dir, STAGE3_DIR),
        *attention_blocks(work_dir, image_paths, store, attention_size, photos),
        *evaluation_blocks(work_dir),
        *scenes_blocks(work_dir),
        *config_blocks(work_dir, pipeline_text),
    ]


def write_report(
    work_dir: Path,
    out_html: Path,
    out_md: Path,
    image_paths: Sequence[str] | None = None,
    attention_size: int = DEFAULT_SIZE,
    photos: int = 4,
    pairs: int = 8,
) -> None:
    """Write the HTML report to `out_html` and the Markdown one to `out_md`, its pictures into
    `out_md.parent / report_files/`. `image_paths[i]` is the file of store image i."""
    blocks = report_blocks(Path(work_dir), image_paths, attention_size, photos, pairs)
    atomic_write_text(render_html(TITLE, blocks), out_html)
    markdown = render_markdown(TITLE, blocks, out_md.parent / MD_FILES_DIR, MD_FILES_DIR)
    atomic_write_text(markdown, out_md)
