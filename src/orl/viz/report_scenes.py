"""The report's scene-benchmark section: the study's tables (pipeline/study.py), if it ran."""

from __future__ import annotations

from pathlib import Path

from orl.pipeline.layout import RESULTS_FILE, SCENES_DIR
from orl.pipeline.stages import ERROR_FILE
from orl.pipeline.study_report import Rows, corr_rows, eval_rows, headroom_rows
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
            f"{sc.get('train')} train / {sc.get('test')} test / {sc.get('test_seen', 0)} "
            f"test_seen scenes ({sc.get('categories')} categories, {sc.get('size')} px) built by "
            "`orl scenes` from real cut-out photos on real backgrounds, object instances and "
            "backgrounds disjoint between train and test; test_seen puts the train instances on "
            "the test backgrounds (the instance columns). Frozen features, linear classifiers fit "
            "on train (%). A quick study is too small to rank the methods; the full study is "
            "docs/results/scenes.md."
        )
    )
    blocks.append(_table(eval_rows(results.data)))
    head, body = headroom_rows(results.data)
    if body:
        blocks.append(
            Text(
                "Floor (random init), ceiling (the same network trained with labels), headroom, "
                "and each self-supervised row's margin over the floor (points):"
            )
        )
        blocks.append(_table((head, body)))
    head, body = corr_rows(results.data)
    if body:
        blocks.append(Text("Stage 2 against the true object boxes (train split, %):"))
        blocks.append(_table((head, body)))
    return blocks
