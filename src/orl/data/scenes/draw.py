"""Drawing and writing the scenes of one split (``build.py`` prepares the splits).

Scene ``i`` of a split is drawn by ``compose.compose_scene`` from its own generator, seeded by
``(seed, split, i)``, so the output does not depend on the number of worker processes nor on the
order scenes are drawn in.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from orl.artifacts import atomic_open
from orl.data.scenes.compose import Background, SceneStyle, Stamp, compose_scene
from orl.data.scenes.layout import SEEN_SPLIT, SPLITS, SceneRecord, coco_annotation, image_dir
from orl.progress import progress

CHUNK = 50  # scenes per worker task


@dataclass(frozen=True)
class SplitJob:
    """What a worker needs to draw and write the scenes of one split."""

    out_dir: Path
    split: str
    seed: int
    size: int
    pools: list[list[Stamp]]  # per category index, the instances of this split
    backgrounds: list[Background]
    style: SceneStyle


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one scene, independent of every other scene."""
    return np.random.default_rng([seed, 3, (*SPLITS, SEEN_SPLIT).index(split), index])


_JOB: SplitJob | None = None  # the split being drawn, in this process or a forked worker


def _set_job(job: SplitJob) -> None:
    global _JOB
    _JOB = job


def _draw_chunk(bounds: tuple[int, int]) -> list[SceneRecord]:
    """Draw and write scenes ``start..stop-1`` of the current split; return their records."""
    job = _JOB
    assert job is not None
    records = []
    for index in range(*bounds):
        rng = scene_rng(job.seed, job.split, index)
        scene = compose_scene(rng, job.pools, job.backgrounds, job.size, job.style)
        with atomic_open(image_dir(job.out_dir, job.split) / f"{index:06d}.png") as handle:
            # Level 1 halves the encoding time (the larger part of a scene) for 5% larger files.
            Image.fromarray(scene.image).save(handle, format="PNG", compress_level=1)
        records.append((scene.background_id, [coco_annotation(o) for o in scene.objects]))
    return records


def draw_split(job: SplitJob, count: int, workers: int) -> list[SceneRecord]:
    """Draw and write the ``count`` scenes of the job's split, here or by ``workers`` processes;
    their records in scene order."""
    chunks = [(start, min(count, start + CHUNK)) for start in range(0, count, CHUNK)]
    records: list[SceneRecord] = []
    with progress(total=count, desc=f"{job.split} scenes", unit="scene") as bar:
        for chunk in _draw_chunks(job, chunks, workers):
            records += chunk
            bar.update(len(chunk))
    return records


def _draw_chunks(
    job: SplitJob, chunks: list[tuple[int, int]], workers: int
) -> Iterator[list[SceneRecord]]:
    """Each chunk's records in chunk order, drawn here or by `workers` processes."""
    if workers <= 1:
        _set_job(job)
        yield from map(_draw_chunk, chunks)
        return
    # fork: workers inherit the decoded stamps instead of unpickling tens of MB each.
    with multiprocessing.get_context("fork").Pool(workers, _set_job, (job,)) as pool:
        yield from pool.imap(_draw_chunk, chunks)
