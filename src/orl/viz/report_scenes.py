"""The report's scene-benchmark section: the study's tables (pipeline/study.py), if it ran."""

from __future__ import annotations

from pathlib import Path

from orl.pipeline.layout import RESULTS_FILE, SCENES_DIR
from orl.pipeline.stages import ERROR_FILE
from orl.pipeline.study_report import Rows, corr_rows, eval_rows
from orl.viz.report_document import Block, Heading, Table, Text
from orl.viz.report_inputs import read_json

TITLE = "Scene benchmark (generated multi-object scenes, quick study)"


def _table(rows: Rows) -> Table:
    head, body = rows
    return Table(head, tuple(body), (False, *(True,) * (len(head) - 1)))


def scenes_blocks(work_dir: Path) -> list[Block]:
    """Scene mAP and object-crop accuracy per method, then stage 2 against the true boxes.

    Nothing at all when the pipeline has no scene study, so reports of other pipelines are
    unchanged.
    """
    folder = work_dir / SCENES_DIR
    if not folder.exists():
        return []
    results = read_json(folder / RESULTS_FILE)
    blocks: list[Block] = [Heading(TITLE)]
    if results.data is None:
        error = folder / ERROR_FILE
        lines = error.read_text(encoding="utf-8").strip().splitlines() if error.is_file() else []
        return [
            *blocks,
            Text(f"{results.problem}: {lines[-1]}" if lines else results.problem, True),
        ]
    sc = results.data.get("config", {}).get("scenes", {})
    blocks.append(
        Text(
            f"{sc.get('train')} train / {sc.get('test')} test scenes ({sc.get('categories')} "
            f"categories, {sc.get('size')} px) built by `orl scenes` from real cut-out photos on "
            "real backgrounds, object instances and backgrounds disjoint between the splits. "
            "Frozen features, linear SVMs fit on train, scored on test (%). A quick study is too "
            "small to rank the methods; the full study is docs/results/scenes.md."
        )
    )
    blocks.append(_table(eval_rows(results.data)))
    head, body = corr_rows(results.data)
    if body:
        blocks.append(Text("Stage 2 against the true object boxes (train split, %):"))
        blocks.append(_table((head, body)))
    return blocks
