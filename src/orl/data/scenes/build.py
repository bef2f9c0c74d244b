"""``orl scenes DIR``: write the labelled multi-object scene benchmark of docs/scenes.md.

Object instances (per category) and background photos (per package) are split 65/35 into disjoint
train and test pools, because with shared instances a colour histogram "memorizes" instances
(mAP 0.33 vs 0.21 disjoint, docs/scenes.md). Scene ``i`` of a split is drawn by
``compose.compose_scene`` from its own generator, seeded by ``(seed, split, i)`` (``draw``), so the
output does not depend on the number of worker processes nor on the order scenes are drawn in. The
folder layout is in ``layout``; a second call with the same settings finds it finished and returns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orl.artifacts import atomic_write_text
from orl.data.scenes import compose
from orl.data.scenes.catalogue import ScenesError, check_category_set
from orl.data.scenes.compose import DEFAULT_STYLE, Background, SceneStyle, Stamp
from orl.data.scenes.draw import SplitJob, draw_split
from orl.data.scenes.fetch import licences_markdown, load_inputs, package_pins
from orl.data.scenes.layout import (
    FORMAT_VERSION,
    SEEN_SPLIT,
    SPLITS,
    fingerprint,
    finished_build,
    image_dir,
    instances_json,
    mark_finished,
    start_build,
    write_split,
)

__all__ = ["ScenesSummary", "build_scenes", "build_scenes_from", "image_dir", "instances_json"]

Log = Callable[[str], None]

TRAIN_FRACTION = 0.65
POOL_MIN_SCENES = 500  # below this, starting worker processes costs more than it saves


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


def _split_counts(n_train: int, n_test: int, n_test_seen: int) -> dict[str, int]:
    """Scenes per split, in drawing order; the ``test_seen`` split only when asked for."""
    counts = {"train": n_train, "test": n_test}
    if n_test_seen:
        counts[SEEN_SPLIT] = n_test_seen
    return counts


def _settings(
    source: str,
    size: int,
    counts: Mapping[str, int],
    seed: int,
    style: SceneStyle,
) -> dict[str, Any]:
    """The settings that decide the output, as JSON values (compared with a recorded build)."""
    if not 32 <= size <= 1024:
        raise ScenesError(f"size {size}: choose 32 to 1024 px")
    n_train, n_test, n_seen = counts["train"], counts["test"], counts.get(SEEN_SPLIT, 0)
    if n_train < 1 or n_test < 1 or n_seen < 0:
        raise ScenesError(f"{n_train} train / {n_test} test scenes: each split needs at least 1")
    if seed < 0:
        raise ScenesError(f"seed {seed}: the seed must be >= 0")
    # Every constant of the generator and the style: changing one makes an old folder count as
    # other settings.
    generation = {
        k.lower(): v for k, v in vars(compose).items() if k.isupper() and k != "DEFAULT_STYLE"
    }
    settings = {
        "format_version": FORMAT_VERSION,
        "source": source,
        "size": size,
        "n_train": n_train,
        "n_test": n_test,
        "n_test_seen": n_seen,
        "seed": seed,
        "train_fraction": TRAIN_FRACTION,
        "generation": generation,
        "style": dataclasses.asdict(style),
    }
    return dict(json.loads(json.dumps(settings)))  # tuples become lists, as when read back


def _summary(out_dir: Path, meta: Mapping[str, Any], seconds: float, reused: bool) -> ScenesSummary:
    counts = meta["counts"]
    scenes = {s: int(c["scenes"]) for s, c in counts.items()}
    objects = {s: int(c["objects"]) for s, c in counts.items()}
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


# split -> (its instances' pool, its backgrounds' pool) in the [train, test] pools; test_seen puts
# the train instances on the test backgrounds.
POOL_OF = {"train": (0, 0), "test": (1, 1), SEEN_SPLIT: (0, 1)}


@dataclass(frozen=True)
class _Pools:
    """The instance ids and the background ids of the [train, test] pools (``split_ids``)."""

    instances: list[list[int]]
    backgrounds: list[list[int]]


def _draw_pools(stamps: Sequence[Stamp], backgrounds: Sequence[Background], seed: int) -> _Pools:
    instances = split_ids(
        [s.instance_id for s in stamps], [str(s.category) for s in stamps], (seed, 1)
    )
    background_ids = split_ids(
        [b.background_id for b in backgrounds], [b.group for b in backgrounds], (seed, 2)
    )
    return _Pools(instances, background_ids)


def _split_inputs(
    split: str,
    pools: _Pools,
    stamps: Sequence[Stamp],
    backgrounds: Sequence[Background],
    n_categories: int,
) -> tuple[list[list[Stamp]], list[Background]]:
    """The stamps (per category index) and the backgrounds the scenes of ``split`` draw from."""
    k_inst, k_back = POOL_OF[split]
    per_category = [
        [s for s in stamps if s.category == c and s.instance_id in pools.instances[k_inst]]
        for c in range(n_categories)
    ]
    kept_backgrounds = [b for b in backgrounds if b.background_id in pools.backgrounds[k_back]]
    if sum(map(bool, per_category)) < 2 or not kept_backgrounds:
        raise ScenesError(
            f"the {split} split gets {sum(map(bool, per_category))} categories and "
            f"{len(kept_backgrounds)} backgrounds; it needs at least 2 and 1"
        )
    return per_category, kept_backgrounds


def _split_contents(
    counts: Mapping[str, int], objects: Mapping[str, int], pools: _Pools
) -> dict[str, dict[str, int]]:
    """Per split: scenes, objects, and the instances and backgrounds of its pools."""
    return {
        s: {
            "scenes": counts[s],
            "objects": objects[s],
            "instances": len(pools.instances[POOL_OF[s][0]]),
            "backgrounds": len(pools.backgrounds[POOL_OF[s][1]]),
        }
        for s in counts
    }


def _write_meta(
    out_dir: Path,
    settings: Mapping[str, Any],
    categories: Sequence[str],
    contents: Mapping[str, Mapping[str, int]],
    pools: _Pools,
    names: Mapping[int, str],
    provenance: Mapping[str, Any],
) -> dict[str, Any]:
    """Write ``meta.json`` (the settings, with their seed, size and style up front, what each split
    holds, where the inputs came from) and ``LICENSES.md``; returns the meta."""
    meta = {
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint(settings),
        "seed": settings["seed"],
        "size": settings["size"],
        "categories": list(categories),
        "counts": contents,
        "instances": dict(zip(SPLITS, pools.instances, strict=True)),
        "backgrounds": dict(zip(SPLITS, pools.backgrounds, strict=True)),
        "background_names": {str(i): n for i, n in sorted(names.items())},
        "style": settings["style"],
        "settings": settings,
        **provenance,
    }
    atomic_write_text(json.dumps(meta, indent=1), out_dir / "meta.json")
    licences = licences_markdown(provenance.get("packages", {}), provenance.get("licences", {}))
    atomic_write_text(licences, out_dir / "LICENSES.md")
    return meta


def build_scenes_from(
    out_dir: Path,
    stamps: Sequence[Stamp],
    backgrounds: Sequence[Background],
    categories: Sequence[str],
    *,
    size: int = 128,
    n_train: int = 2000,
    n_test: int = 1000,
    n_test_seen: int = 0,
    seed: int = 0,
    style: SceneStyle = DEFAULT_STYLE,
    workers: int | None = None,
    source: str = "",
    provenance: Mapping[str, Any] | None = None,
    log: Log = print,
) -> ScenesSummary:
    """Write the benchmark from in-memory stamps and backgrounds (prepared for ``size``).

    ``stamps[k].category`` indexes ``categories`` (COCO category id = index + 1). ``source`` names
    the inputs in the settings fingerprint (default: a digest of the pixels); ``provenance``
    (package versions, licences, dropped inputs) is copied into ``meta.json``. ``workers=None``
    uses 2 processes from 500 scenes on; the output is the same for any number. ``n_test_seen``
    scenes of the ``test_seen`` split put the train instances on the test backgrounds.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    source = source or f"in-memory:{_content_digest(stamps, backgrounds)}"
    counts = _split_counts(n_train, n_test, n_test_seen)
    settings = _settings(source, size, counts, seed, style)
    if finished_build(out_dir, settings):
        return _reuse(out_dir, started, log)
    pools = _draw_pools(stamps, backgrounds, seed)
    jobs = []
    for split in counts:
        per_category, kept = _split_inputs(split, pools, stamps, backgrounds, len(categories))
        jobs.append(SplitJob(out_dir, split, seed, size, per_category, kept, style))

    start_build(out_dir, settings)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if sum(counts.values()) >= POOL_MIN_SCENES else 1
    drawn = " + ".join(f"{n} {split}" for split, n in counts.items())
    log(f"drawing {drawn} scenes of {size} px ({workers} process(es))")
    names = {b.background_id: b.name for b in backgrounds}
    objects = {}
    for job in jobs:
        records = draw_split(job, counts[job.split], workers)
        objects[job.split] = write_split(out_dir, job.split, records, categories, names, size)
    contents = _split_contents(counts, objects, pools)
    provenance = dict(provenance or {})
    meta = _write_meta(out_dir, settings, categories, contents, pools, names, provenance)
    mark_finished(out_dir, settings)
    summary = _summary(out_dir, meta, time.monotonic() - started, reused=False)
    wrote = " + ".join(str(objects[split]) for split in counts)
    log(f"wrote {drawn} scenes ({wrote} objects) to {out_dir} in {summary.seconds:.1f} s")
    return summary


def build_scenes(
    out_dir: Path,
    *,
    categories: str = "core",
    size: int = 128,
    n_train: int = 2000,
    n_test: int = 1000,
    n_test_seen: int = 0,
    seed: int = 0,
    style: SceneStyle = DEFAULT_STYLE,
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
    counts = _split_counts(n_train, n_test, n_test_seen)
    if finished_build(out_dir, _settings(source, size, counts, seed, style)):
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
        n_test_seen=n_test_seen,
        seed=seed,
        style=style,
        source=source,
        provenance=inputs.provenance,
        log=log,
    )
