"""The scene-benchmark study: does ORL learn better object-level features than BYOL here?

For each seed, on the train split of a generated scene benchmark (docs/scenes.md), with one
pre-training preset for every row (same images, epochs, batch, resolution):

    byol            stage 1 (sec. 3.1) — also the image-level baseline of Tables 1-4
    byol_multicrop  BYOL with 2 global + 4 small crops (Table 5c's control)
    orl             stage 2 on selective-search boxes with the seed's BYOL model, then stage 3
    orl_gt          the same with the ground-truth object boxes (Table 5d)
    random          random initialisation (no training): the floor
    supervised      the same network trained with the scenes' labels (multi-label, BCE), the same
                    images seen: the ceiling of the category protocols
    supervised_instances  trained on the train split's object crops with their instance labels:
                    the ceiling of the instance protocol

then `orl eval scenes` on the test split for every row, `orl eval corr` for both stores, and the
hand-crafted baselines once. Every unit runs through `run_stage`, so a killed study resumes where
it stopped and a changed setting recomputes only what depends on it.

    OUT/scenes/benchmark/      the benchmark (`orl scenes`)
    OUT/s<seed>/<method>/      pre-training run + eval.json
    OUT/s<seed>/corr, corr_gt  stage-2 stores + quality.json
    OUT/baselines/eval.json    colour histogram, raw pixels
    OUT/results.json           every measure per method and seed (written after each unit)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orl.artifacts import atomic_write_text
from orl.config import settings_key, to_dict
from orl.data.scenes.build import build_scenes, instances_json
from orl.data.scenes.layout import SEEN_SPLIT
from orl.data.sources import resolve_sources
from orl.discover.config import DiscoverConfig
from orl.discover.pipeline import run_discover
from orl.evaluate.inputs import load_weights
from orl.pipeline import layout
from orl.pipeline.stages import run_stage
from orl.pipeline.study_config import METHOD_ORDER, ResolvedStudy
from orl.train.config import Method, PretrainConfig
from orl.train.loop import pretrain
from orl.train.supervised import WEIGHTS_FILE, Target

# The supervised rows and the `orl supervised` target each trains on.
SUPERVISED_TARGET: dict[str, Target] = {"supervised": "scene", "supervised_instances": "instances"}
# The study's rows that pre-train, and the training loop's method each runs.
TRAIN_METHOD: dict[str, Method] = {
    "byol": "byol",
    "byol_multicrop": "byol_multicrop",
    "orl": "orl",
    "orl_gt": "orl",
}
EVAL_FILE = "eval.json"
QUALITY_FILE = "quality.json"


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write_json(data: dict[str, Any], path: Path) -> None:
    atomic_write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", path)


def run_config(
    rs: ResolvedStudy, method: str, data: str, seed: int, corr: Path | None
) -> PretrainConfig:
    """The shared preset with this row's method, seed, data and store."""
    cfg = dataclasses.replace(rs.train, data=[data], seed=seed, method=TRAIN_METHOD[method])
    if corr is not None:
        cfg = dataclasses.replace(cfg, orl=dataclasses.replace(cfg.orl, corr=str(corr)))
    return cfg


def discover_config(rs: ResolvedStudy, method: str) -> DiscoverConfig:
    """Stage 2's preset; `orl_gt` swaps selective search for the ground-truth boxes (Table 5d)."""
    return rs.discover if method == "orl" else dataclasses.replace(rs.discover, boxes="coco-gt")


def _summary(folder: Path) -> dict[str, Any]:
    s = _read_json(folder / layout.SUMMARY_FILE)
    return {k: s[k] for k in ("images_seen", "steps", "final_loss", "images_per_s")}


class Study:
    """The study's work folder and the keys of its finished units."""

    def __init__(
        self, rs: ResolvedStudy, out: Path, cache: Path | None, log: Callable[[str], None]
    ) -> None:
        self.rs, self.out, self.cache, self.log = rs, out, cache, log
        self.t0 = time.perf_counter()
        given = rs.cfg.scenes_dir
        # The unit's folder holds its stage.json; the benchmark goes in an empty folder below it.
        self.scenes_dir = Path(given).resolve() if given else out / "scenes" / "benchmark"
        self.scenes_key = settings_key("scenes", to_dict(rs.cfg.scenes), given)
        self.train_spec = str(instances_json(self.scenes_dir, "train"))
        self.fingerprint = ""
        self.keys: dict[str, str] = {}  # "<unit>/<seed>" -> stage key
        self.results: dict[str, Any] = {"config": to_dict(rs.cfg), "runs": {}, "corr": {}}

    def say(self, message: str) -> None:
        self.log(f"[study {time.perf_counter() - self.t0:6.0f} s] {message}")

    def unit(self, name: str, folder: Path, key: str, work: Callable[[], None]) -> dict[str, Any]:
        """Run one resumable unit, then refresh results.json so partial studies are readable."""
        state = run_stage(name, folder, key, work, resume=True, log=self.say)
        # The study's time is the sum of its units' own times, so a resumed study reports the
        # compute it took, not the seconds of its last invocation.
        self.results["wall_time_s"] = self.results.get("wall_time_s", 0.0) + state["wall_time_s"]
        _write_json(self.results, self.out / layout.RESULTS_FILE)
        return state

    def build_scenes(self) -> None:
        """Build the benchmark (or take `scenes_dir`) and fingerprint its train split."""
        sc = self.rs.cfg.scenes

        def work() -> None:
            build_scenes(
                self.scenes_dir,
                categories=sc.categories,
                size=sc.size,
                n_train=sc.train,
                n_test=sc.test,
                n_test_seen=sc.test_seen,
                seed=sc.seed,
                style=sc.style,
                cache=self.cache or self.out / ".cache-scenes",
                log=self.say,
            )

        if self.rs.cfg.scenes_dir is None:
            self.unit("scenes", self.scenes_dir.parent, self.scenes_key, work)
        self.fingerprint = resolve_sources([self.train_spec]).fingerprint
        others = [s for s in ("test", SEEN_SPLIT) if instances_json(self.scenes_dir, s).is_file()]
        tests = [resolve_sources([str(instances_json(self.scenes_dir, s))]) for s in others]
        # Later units depend on the scenes' content, not only on the settings that made them.
        self.scenes_key = settings_key(
            self.scenes_key, self.fingerprint, *(t.fingerprint for t in tests)
        )
        self.results["data_fingerprint"] = self.fingerprint

    def run_dir(self, method: str, seed: int) -> Path:
        return self.out / f"s{seed}" / method

    def corr_dir(self, method: str, seed: int) -> Path:
        return self.out / f"s{seed}" / ("corr" if method == "orl" else "corr_gt")

    def train(self, method: str, seed: int) -> None:
        """Pre-train one row; ORL rows read the store `discover` made for this seed."""
        folder = self.run_dir(method, seed)
        corr = self.corr_dir(method, seed) if method.startswith("orl") else None
        cfg = run_config(self.rs, method, self.train_spec, seed, corr)
        upstream = self.keys.get(f"corr_{method}/{seed}")
        key = settings_key(method, to_dict(cfg), self.fingerprint, upstream)
        self.keys[f"{method}/{seed}"] = key
        state = self.unit(f"s{seed}/{method}", folder, key, lambda: _train(cfg, folder))
        self.results["runs"][f"{method}/{seed}"] = {
            "train": {"wall_time_s": state["wall_time_s"], **_summary(folder)}
        }

    def train_supervised(self, row: str, seed: int) -> None:
        """The ceiling: the preset's network, optimizer, schedule and images seen, with labels."""
        from orl.train.supervised import save_supervised, train_supervised

        folder = self.run_dir(row, seed)
        cfg = dataclasses.replace(self.rs.train, data=[self.train_spec], seed=seed)
        key = settings_key(row, to_dict(cfg), self.scenes_key)
        self.keys[f"{row}/{seed}"] = key

        def work() -> None:
            net, summary = train_supervised(
                cfg, self.scenes_dir, SUPERVISED_TARGET[row], "crop_flip", None, None
            )
            save_supervised(net, summary, folder)

        state = self.unit(f"s{seed}/{row}", folder, key, work)
        summary = _read_json(folder / "summary.json")
        self.results["runs"][f"{row}/{seed}"] = {
            "train": {
                "wall_time_s": state["wall_time_s"],
                "images_seen": summary["steps"] * cfg.batch_size,
                "steps": summary["steps"],
                "final_loss": summary["final_loss"],
            }
        }

    def discover(self, method: str, seed: int) -> None:
        """Stage 2 on the train split with this seed's BYOL model (sec. 3.1)."""
        corr = self.corr_dir(method, seed)
        cfg = discover_config(self.rs, method)
        key = settings_key("discover", to_dict(cfg), self.fingerprint, self.keys[f"byol/{seed}"])
        self.keys[f"corr_{method}/{seed}"] = key
        ckpt = self.run_dir("byol", seed) / layout.CHECKPOINT_FILE
        state = self.unit(
            f"s{seed}/{corr.name}",
            corr,
            key,
            lambda: _discover(cfg, ckpt, self.train_spec, corr),
        )
        self.results["corr"][f"{method}/{seed}"] = {"wall_time_s": state["wall_time_s"]}

    def evaluate(self, folder: Path, upstream: str, weights: str, seed: int) -> dict[str, Any]:
        """`orl eval scenes` for one row; `weights` is a checkpoint, `random:ARCH`, or "" for
        the hand-crafted baselines alone."""
        from orl.evaluate.scenes import evaluate_scenes  # scikit-learn; training passes skip it

        ev = self.rs.cfg.eval

        def work() -> None:
            backbone = load_weights(weights, seed).build_backbone() if weights else None
            scores = evaluate_scenes(
                self.scenes_dir,
                backbone,
                image_size=ev.image_size,
                crop_size=ev.crop_size,
                baselines=backbone is None,
                seed=seed,
                costs=ev.costs,
                jobs=ev.jobs,
                gray=ev.gray,
            )
            _write_json(scores, folder / EVAL_FILE)

        name = str(folder.relative_to(self.out))
        self.unit(
            name,
            folder,
            settings_key("eval", to_dict(ev), upstream, weights, seed, self.scenes_key),
            work,
        )
        return _read_json(folder / EVAL_FILE)

    def evaluate_row(self, method: str, seed: int) -> None:
        """Scene and object-crop scores of one row; ORL rows also score their store."""
        if method == "random":
            folder = self.run_dir("random", seed)
            scores = self.evaluate(folder, self.scenes_key, f"random:{self.rs.train.arch}", seed)
            self.results["runs"][f"random/{seed}"] = {"eval": scores}
            return
        folder = self.run_dir(method, seed)
        weights = WEIGHTS_FILE if method in SUPERVISED_TARGET else layout.CHECKPOINT_FILE
        checkpoint = str(folder / weights)
        scores = self.evaluate(folder / "eval", self.keys[f"{method}/{seed}"], checkpoint, seed)
        self.results["runs"][f"{method}/{seed}"]["eval"] = scores
        if method.startswith("orl"):
            self.score_store(method, seed)

    def score_store(self, method: str, seed: int) -> None:
        """`orl eval corr`: the store's RoIs and pairs against the true object boxes."""
        from orl.evaluate.corr_quality import score_correspondences

        corr = self.corr_dir(method, seed)
        quality = corr.parent / f"{corr.name}_quality"

        def work() -> None:
            scores = score_correspondences(corr, self.scenes_dir, "train", seed)
            _write_json(scores, quality / QUALITY_FILE)

        key = settings_key("quality", self.keys[f"corr_{method}/{seed}"], seed)
        self.unit(f"s{seed}/{quality.name}", quality, key, work)
        self.results["corr"][f"{method}/{seed}"].update(_read_json(quality / QUALITY_FILE))


def _train(cfg: PretrainConfig, folder: Path) -> None:
    pretrain(cfg, folder, resume=True)


def _discover(cfg: DiscoverConfig, checkpoint: Path, data: str, out: Path) -> None:
    run_discover(cfg, checkpoint, [data], out, resume=True)


def run_study(
    rs: ResolvedStudy,
    out: Path,
    cache: Path | None = None,
    evaluate: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) every unit of the study into `out`; returns the results written there.

    All pre-training (seed by seed) comes before any evaluation, so `evaluate=False` gives a
    training-only pass that a later full run reuses unit by unit.
    """
    out.mkdir(parents=True, exist_ok=True)
    study = Study(rs, out, cache, log)
    study.build_scenes()
    methods = [m for m in METHOD_ORDER if m in rs.cfg.methods]
    for seed in rs.cfg.seeds:
        for method in methods:
            if method in ("byol", "byol_multicrop"):
                study.train(method, seed)
            elif method in ("orl", "orl_gt"):
                study.discover(method, seed)
                study.train(method, seed)
            elif method in SUPERVISED_TARGET:
                study.train_supervised(method, seed)
    if evaluate:
        if rs.cfg.baselines:
            study.results["baselines"] = study.evaluate(out / "baselines", study.scenes_key, "", 0)
        for seed in rs.cfg.seeds:
            for method in methods:
                study.evaluate_row(method, seed)
    _write_json(study.results, out / layout.RESULTS_FILE)
    study.say(f"study {'finished' if evaluate else 'pre-training finished'} -> {out}")
    return study.results
