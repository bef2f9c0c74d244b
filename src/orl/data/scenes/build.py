"""``orl scenes DIR``: write the labelled multi-object scene benchmark of docs/scenes.md.

Object instances (per category) and background photos (per package) are split 65/35 into disjoint
train and test pools, because with shared instances a colour histogram "memorizes" instances
(mAP 0.33 vs 0.21 disjoint, docs/scenes.md). Scene ``i`` of a split is drawn by
``compose.compose_scene`` from its own generator, seeded by ``(seed, split, i)``, so the output
does not depend on the number of worker processes nor on the order scenes are drawn in. The
folder layout is in ``layout``; a second call with the same settings finds it finished and returns.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from orl.artifacts import atomic_open, atomic_write_text
from orl.data.scenes import compose
from orl.data.scenes.catalogue import ScenesError, check_category_set
from orl.data.scenes.compose import Background, Stamp, compose_scene
from orl.data.scenes.fetch import licences_markdown, load_inputs, package_pins
from orl.data.scenes.layout import (
    FORMAT_VERSION,
    SPLITS,
    SceneRecord,
    coco_annotation,
    fingerprint,
    finished_build,
    image_dir,
    instances_json,
    mark_finished,
    start_build,
    write_split,
)
from orl.progress import progress

__all__ = ["ScenesSummary", "build_scenes", "build_scenes_from", "image_dir", "instances_json"]

Log = Callable[[str], None]

TRAIN_FRACTION = 0.65
POOL_MIN_SCENES = 500  # below this, starting worker processes costs more than it saves
CHUNK = 50  # scenes per worker task


@dataclass(frozen=True)
class ScenesSummary:
    """What ``build_scenes`` wrote (or found already written: ``reused``)."""

    out_dir: Path
    scenes: dict[str, int]
    objects: dict[str, int]
    train_json: Path
    test_json: Path
    seconds: float
    reused: bool


@dataclass(frozen=True)
class _SplitJob:
    """What a worker needs to draw and write the scenes of one split."""

    out_dir: Path
    split: str
    seed: int
    size: int
    pools: list[list[Stamp]]  # per category index, the instances of this split
    backgrounds: list[Background]


def split_ids(ids: Sequence[int], groups: Sequence[str], seed: Sequence[int]) -> list[list[int]]:
    """``[train, test]`` ids: each group shuffled and cut 65/35, both sides non-empty if it can."""
    rng = np.random.default_rng(list(seed))
    parts: list[list[int]] = [[], []]
    for group in sorted(set(groups)):
        members = [i for i, g in zip(ids, groups, strict=True) if g == group]
        order = [members[j] for j in rng.permutation(len(members))]
        n = len(order)
        cut = min(n - 1, max(1, round(TRAIN_FRACTION * n))) if n > 1 else int(rng.random() < 0.65)
        parts[0] += order[:cut]
        parts[1] += order[cut:]
    return [sorted(p) for p in parts]


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one scene, independent of every other scene."""
    return np.random.default_rng([seed, 3, SPLITS.index(split), index])


_JOB: _SplitJob | None = None  # the split being drawn, in this process or a forked worker


def _set_job(job: _SplitJob) -> None:
    global _JOB
    _JOB = job


def _draw_chunk(bounds: tuple[int, int]) -> list[SceneRecord]:
    """Draw and write scenes ``start..stop-1`` of the current split; return their records."""
    job = _JOB
    assert job is not None
    records = []
    for index in range(*bounds):
        rng = scene_rng(job.seed, job.split, index)
        scene = compose_scene(rng, job.pools, job.backgrounds, job.size)
        with atomic_open(image_dir(job.out_dir, job.split) / f"{index:06d}.png") as handle:
            # Level 1 halves the encoding time (the larger part of a scene) for 5% larger files.
            Image.fromarray(scene.image).save(handle, format="PNG", compress_level=1)
        records.append((scene.background_id, [coco_annotation(o) for o in scene.objects]))
    return records


def _draw_split(job: _SplitJob, count: int, workers: int) -> list[SceneRecord]:
    chunks = [(start, min(count, start + CHUNK)) for start in range(0, count, CHUNK)]
    records: list[SceneRecord] = []
    with progress(total=count, desc=f"{job.split} scenes", unit="scene") as bar:
        for chunk in _draw_chunks(job, chunks, workers):
            records += chunk
            bar.update(len(chunk))
    return records


def _draw_chunks(
    job: _SplitJob, chunks: list[tuple[int, int]], workers: int
) -> Iterator[list[SceneRecord]]:
    """Each chunk's records in chunk order, drawn here or by `workers` processes."""
    if workers <= 1:
        _set_job(job)
        yield from map(_draw_chunk, chunks)
        return
    # fork: workers inherit the decoded stamps instead of unpickling tens of MB each.
    with multiprocessing.get_context("fork").Pool(workers, _set_job, (job,)) as pool:
        yield from pool.imap(_draw_chunk, chunks)


def _settings(source: str, size: int, n_train: int, n_test: int, seed: int) -> dict[str, Any]:
    """The settings that decide the output, as JSON values (compared with a recorded build)."""
    if not 32 <= size <= 1024:
        raise ScenesError(f"size {size}: choose 32 to 1024 px")
    if n_train < 1 or n_test < 1:
        raise ScenesError(f"{n_train} train / {n_test} test scenes: each split needs at least 1")
    if seed < 0:
        raise ScenesError(f"seed {seed}: the seed must be >= 0")
    # Every constant of the generator: changing one makes an old folder count as other settings.
    generation = {k.lower(): v for k, v in vars(compose).items() if k.isupper()}
    settings = {
        "format_version": FORMAT_VERSION,
        "source": source,
        "size": size,
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        "train_fraction": TRAIN_FRACTION,
        "generation": generation,
    }
    return dict(json.loads(json.dumps(settings)))  # tuples become lists, as when read back


def _summary(out_dir: Path, meta: Mapping[str, Any], seconds: float, reused: bool) -> ScenesSummary:
    counts = meta["counts"]
    scenes = {s: int(counts[s]["scenes"]) for s in SPLITS}
    objects = {s: int(counts[s]["objects"]) for s in SPLITS}
    train, test = instances_json(out_dir, "train"), instances_json(out_dir, "test")
    return ScenesSummary(out_dir, scenes, objects, train, test, seconds, reused)


def _reuse(out_dir: Path, started: float, log: Log) -> ScenesSummary:
    log(f"scene set already complete in {out_dir}")
    meta = json.loads((out_dir / "meta.json").read_text(encoding="utf-8"))
    return _summary(out_dir, meta, time.monotonic() - started, reused=True)


def _content_digest(stamps: Sequence[Stamp], backgrounds: Sequence[Background]) -> str:
    digest = hashlib.sha256()
    for s in stamps:
        digest.update(f"{s.instance_id},{s.category},{s.rgba.shape}".encode() + s.rgba.tobytes())
    for b in backgrounds:
        digest.update(f"{b.background_id},{b.name},{b.group}".encode() + b.rgb.tobytes())
    return digest.hexdigest()


def build_scenes_from(
    out_dir: Path,
    stamps: Sequence[Stamp],
    backgrounds: Sequence[Background],
    categories: Sequence[str],
    *,
    size: int = 128,
    n_train: int = 2000,
    n_test: int = 1000,
    seed: int = 0,
    workers: int | None = None,
    source: str = "",
    provenance: Mapping[str, Any] | None = None,
    log: Log = print,
) -> ScenesSummary:
    """Write the benchmark from in-memory stamps and backgrounds (prepared for ``size``).

    ``stamps[k].category`` indexes ``categories`` (COCO category id = index + 1). ``source`` names
    the inputs in the settings fingerprint (default: a digest of the pixels); ``provenance``
    (package versions, licences, dropped inputs) is copied into ``meta.json``. ``workers=None``
    uses 2 processes from 500 scenes on; the output is the same for any number.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    source = source or f"in-memory:{_content_digest(stamps, backgrounds)}"
    settings = _settings(source, size, n_train, n_test, seed)
    if finished_build(out_dir, settings):
        return _reuse(out_dir, started, log)
    provenance = dict(provenance or {})
    instances = split_ids(
        [s.instance_id for s in stamps], [str(s.category) for s in stamps], (seed, 1)
    )
    background_ids = split_ids(
        [b.background_id for b in backgrounds], [b.group for b in backgrounds], (seed, 2)
    )
    jobs = []
    for k, split in enumerate(SPLITS):
        pools = [
            [s for s in stamps if s.category == c and s.instance_id in instances[k]]
            for c in range(len(categories))
        ]
        kept_backgrounds = [b for b in backgrounds if b.background_id in background_ids[k]]
        if sum(map(bool, pools)) < 2 or not kept_backgrounds:
            raise ScenesError(
                f"the {split} split gets {sum(map(bool, pools))} categories and "
                f"{len(kept_backgrounds)} backgrounds; it needs at least 2 and 1"
            )
        jobs.append(_SplitJob(out_dir, split, seed, size, pools, kept_backgrounds))

    start_build(out_dir, settings)
    counts = {"train": n_train, "test": n_test}
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if n_train + n_test >= POOL_MIN_SCENES else 1
    log(f"drawing {n_train} train + {n_test} test scenes of {size} px ({workers} process(es))")
    names = {b.background_id: b.name for b in backgrounds}
    objects = {}
    for job in jobs:
        records = _draw_split(job, counts[job.split], workers)
        objects[job.split] = write_split(out_dir, job.split, records, categories, names, size)
    split_counts = {
        s: {
            "scenes": counts[s],
            "objects": objects[s],
            "instances": len(instances[k]),
            "backgrounds": len(background_ids[k]),
        }
        for k, s in enumerate(SPLITS)
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint(settings),
        "seed": seed,
        "size": size,
        "categories": list(categories),
        "counts": split_counts,
        "instances": dict(zip(SPLITS, instances, strict=True)),
        "backgrounds": dict(zip(SPLITS, background_ids, strict=True)),
        "background_names": {str(i): n for i, n in sorted(names.items())},
        "settings": settings,
        **provenance,
    }
    atomic_write_text(json.dumps(meta, indent=1), out_dir / "meta.json")
    licences = licences_markdown(provenance.get("packages", {}), provenance.get("licences", {}))
    atomic_write_text(licences, out_dir / "LICENSES.md")
    mark_finished(out_dir, settings)
    summary = _summary(out_dir, meta, time.monotonic() - started, reused=False)
    log(
        f"wrote {n_train} + {n_test} scenes ({objects['train']} + {objects['test']} objects) to "
        f"{out_dir} in {summary.seconds:.1f} s"
    )
    return summary


def build_scenes(
    out_dir: Path,
    *,
    categories: str = "core",
    size: int = 128,
    n_train: int = 2000,
    n_test: int = 1000,
    seed: int = 0,
    cache: Path | None = None,
    keep_gray: bool = False,
    log: Log = print,
) -> ScenesSummary:
    """Fetch the stamps and backgrounds (into ``cache``, default ``DIR/.cache``) and write the
    benchmark. A finished ``DIR`` with the same settings is returned as it is, without fetching."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    check_category_set(categories)
    source = f"packages:{categories}:keep_gray={keep_gray}:{','.join(package_pins())}"
    if finished_build(out_dir, _settings(source, size, n_train, n_test, seed)):
        return _reuse(out_dir, started, log)
    log(f"fetching the stamps ({categories} categories) and the backgrounds")
    inputs = load_inputs(categories, keep_gray, size, cache or out_dir / ".cache", log)
    return build_scenes_from(
        out_dir,
        inputs.stamps,
        inputs.backgrounds,
        inputs.categories,
        size=size,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        source=source,
        provenance=inputs.provenance,
        log=log,
    )
