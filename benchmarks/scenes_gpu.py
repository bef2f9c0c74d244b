"""The scene study's compute axis on one GPU: random init, BYOL and ORL (true boxes) with many
times the images a CPU run sees, one seed, inside a fixed device-time budget.

Two steps, because the device machine reaches no package registry:

    python benchmarks/scenes_gpu.py prepare --cache CACHE   # here: stamps + backgrounds -> npz
    python benchmarks/scenes_gpu.py run --budget 300        # there: scenes, training, evaluation

`prepare` writes `.scenes-gpu/inputs.npz` (the decoded object stamps and background photos that
`orl scenes` would fetch, about 30 MB) and `.scenes-gpu/wheels/` (pycocotools for the device's
Python). `run` draws the scenes from it with every CPU core, measures the training throughput,
sizes each run's epochs to its share of `--budget` (capped at `--max-multiple` times the CPU
study's images seen), trains BYOL, builds stage 2 on the true boxes with that model, trains ORL,
and evaluates the three rows with `orl eval scenes` (grayscale rows included). Every figure goes
to `$OUT/scenes_gpu.json` (or `--out`) as soon as it exists, so a run cut short keeps what it did.
`benchmarks/scenes_gpu.sh` is the device command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PREPARED = ROOT / ".scenes-gpu"
# The CPU study's scenes and style (docs/results/scenes.md): 128 px, 2-3 objects of 8-25% of the
# scene, each pasted copy recoloured (hue +-0.1, saturation and brightness x0.6-1.4) and blurred.
STYLE = {
    "objects": (2, 3),
    "area": (0.08, 0.25),
    "hue": 0.1,
    "saturation": (0.6, 1.4),
    "brightness": (0.6, 1.4),
    "blur": 1.0,
}
CPU_IMAGES_SEEN = 35_520  # one CPU run of the study: 30 epochs of 1,184 scenes (batch 32)
EVAL = {"image_size": 96, "crop_size": 48, "costs": [0.01, 0.1, 1.0]}


def device(torch: Any) -> Any:
    """The GPU; the CPU for a smoke test of the same code."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare(cache: Path, out: Path) -> None:
    """Fetch and decode the stamps and backgrounds once, here, into one npz (no pickle)."""
    from orl.data.scenes.fetch import load_inputs

    inputs = load_inputs("core", False, 128, cache, print)
    save_inputs(inputs.stamps, inputs.backgrounds, inputs.categories, out / "inputs.npz")
    print(f"{len(inputs.stamps)} stamps, {len(inputs.backgrounds)} backgrounds -> {out}")


def save_inputs(stamps: Any, backgrounds: Any, categories: list[str], path: Path) -> None:
    """Stamps, backgrounds and category names as arrays plus a JSON string: loadable with
    `allow_pickle=False` on a machine with nothing but numpy."""
    arrays: dict[str, np.ndarray] = {}
    for k, s in enumerate(stamps):
        arrays[f"stamp{k}"] = s.rgba
    for k, b in enumerate(backgrounds):
        arrays[f"background{k}"] = b.rgb
    meta = {
        "categories": categories,
        "stamps": [(s.instance_id, s.category, s.area) for s in stamps],
        "backgrounds": [(b.background_id, b.name, b.group) for b in backgrounds],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


def build(folder: Path, n_train: int, n_test: int, n_seen: int, inputs: Path | None = None) -> Path:
    """The scenes drawn from the prepared inputs with every core (identical to `orl scenes`'
    for the same seed and style: scene i depends on (seed, split, i) alone)."""
    from orl.data.scenes.build import build_scenes_from
    from orl.data.scenes.compose import Background, SceneStyle, Stamp

    data = np.load(inputs or PREPARED / "inputs.npz", allow_pickle=False)
    meta = json.loads(str(data["meta"]))
    stamps = [
        Stamp(int(i), int(c), data[f"stamp{k}"], float(a))
        for k, (i, c, a) in enumerate(meta["stamps"])
    ]
    backgrounds = [
        Background(int(i), str(n), str(g), data[f"background{k}"])
        for k, (i, n, g) in enumerate(meta["backgrounds"])
    ]
    build_scenes_from(
        folder, stamps, backgrounds, meta["categories"], size=128, n_train=n_train,
        n_test=n_test, n_test_seen=n_seen, style=SceneStyle(**STYLE),  # type: ignore[arg-type]
        workers=os.cpu_count(), source="scenes_gpu:core", log=print,
    )  # fmt: skip
    return folder


class Budget:
    """Wall-clock bookkeeping against the device budget; every result is written at once."""

    def __init__(self, seconds: float, out: Path) -> None:
        self.t0, self.seconds, self.out = time.perf_counter(), seconds, out
        self.results: dict[str, Any] = {"budget_s": seconds, "rows": {}, "runs": {}}

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.t0)

    def save(self) -> None:
        self.results["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        self.out.write_text(json.dumps(self.results, indent=1))

    def say(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.0f} s] {message}", flush=True)


def orl(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "orl", *args], check=True)


def throughput(train_json: str, sets: list[str]) -> float:
    """Steady-state training images/s of this preset on this machine (`orl bench train`)."""
    cmd = [sys.executable, "-m", "orl", "bench", "train", "--config", "scenes_train"]
    cmd += [f"--set={s}" for s in [f"data={train_json}", *sets]]
    proc = subprocess.run([*cmd, "--warmup", "10", "--steps", "30"], capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("train images/s")]
    if not line:
        raise RuntimeError(f"bench failed: {proc.stderr[-2000:]}")
    return float(line[0].split(":")[1])


def evaluate(b: Budget, name: str, scenes: Path, weights: str) -> None:
    import torch

    from orl.evaluate.inputs import load_weights
    from orl.evaluate.scenes import evaluate_scenes

    t = time.perf_counter()
    backbone = load_weights(weights, 0).build_backbone()
    report = evaluate_scenes(
        scenes, backbone, image_size=EVAL["image_size"], crop_size=EVAL["crop_size"],
        costs=EVAL["costs"], gray=True, jobs=os.cpu_count() or 1, device=device(torch),
    )  # fmt: skip
    b.results["rows"][name] = report
    b.save()
    keys = ("scene_map", "crop_top1", "instance_r1", "instance_map", "instance_top1")
    scores = " ".join(f"{k} {100 * report[k]:.1f}" for k in keys)
    b.say(f"{name}: {scores} ({time.perf_counter() - t:.0f} s)")


def run(args: argparse.Namespace) -> None:
    work = Path(args.work)
    b = Budget(args.budget, Path(args.out))
    bench = build(work / "bench", *args.bench_scenes)
    train = build(work / "train", args.train_scenes, 1, 0)
    train_json = str(train / "annotations" / "instances_train.json")
    b.say("scenes built")
    sets = [f"batch_size={args.batch}", f"workers={max(1, (os.cpu_count() or 2) - 1)}"]
    # fp32: the step is not what limits a ResNet-18 at 64 px (the loader is), and it keeps the
    # small-map BN statistics of 32 px RoI patches out of bf16's range.
    sets += ["precision=fp32", "log_every=50", "save_every_epochs=0", *args.set]
    ips = throughput(train_json, sets)
    b.results["train_images_per_s"] = ips
    # BYOL and ORL share what is left after the evaluations (about 40 s each); ORL's step
    # (four more RoI patches) costs about 1.4x BYOL's.
    share = max(30.0, (b.left() - 3 * args.eval_s - 40.0) / 2.4)
    images = min(args.max_multiple * CPU_IMAGES_SEEN, share * ips)
    epochs = max(1, round(images / args.train_scenes))
    b.results.update(epochs=epochs, images_seen=epochs * args.train_scenes)
    b.results["multiple_of_cpu_run"] = round(epochs * args.train_scenes / CPU_IMAGES_SEEN, 1)
    b.say(f"{ips:.0f} images/s -> {epochs} epochs of {args.train_scenes} scenes")
    b.save()
    evaluate(b, "random", bench, "random:resnet18")
    runs = work / "runs"
    common = ["--config", "scenes_train", *(f"--set={s}" for s in [*sets, f"epochs={epochs}"])]
    for name, extra in (("byol", []), ("orl_gt", ["method=orl"])):
        t = time.perf_counter()
        if name == "orl_gt":
            orl("discover", "--checkpoint", str(runs / "byol" / "checkpoints" / "last.pt"),
                "--data", train_json, "--out", str(runs / "corr_gt"), "--boxes", "coco-gt",
                "--set=knn_resize=73", "--set=knn_crop=64", "--set=roi_size=32",
                "--set=batch_size=512")  # fmt: skip
            extra = [*extra, f"orl.corr={runs / 'corr_gt'}"]
        orl("pretrain", *common, f"--set=data={train_json}", *(f"--set={s}" for s in extra),
            "--out", str(runs / name))  # fmt: skip
        summary = json.loads((runs / name / "summary.json").read_text())
        b.results["runs"][name] = {**summary, "seconds": round(time.perf_counter() - t, 1)}
        b.save()
        b.say(f"{name} trained in {time.perf_counter() - t:.0f} s")
        evaluate(b, name, bench, str(runs / name / "checkpoints" / "last.pt"))
    b.say("done")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    pp = sub.add_parser("prepare", help="here: stamps and backgrounds -> .scenes-gpu/inputs.npz")
    pp.add_argument("--cache", type=Path, required=True, help="`orl scenes --cache` folder")
    pr = sub.add_parser("run", help="on the device: scenes, BYOL, ORL (true boxes), evaluation")
    pr.add_argument("--budget", type=float, default=300.0, help="seconds for the whole run")
    pr.add_argument("--eval-s", type=float, default=45.0, help="expected seconds per evaluation")
    pr.add_argument("--max-multiple", type=float, default=50.0)
    pr.add_argument("--train-scenes", type=int, default=12000)
    pr.add_argument(
        "--bench-scenes", type=int, nargs=3, default=(1200, 1000, 600),
        help="train, test and test_seen scenes of the evaluated benchmark (the CPU study's)",
    )  # fmt: skip
    pr.add_argument("--batch", type=int, default=256)
    pr.add_argument("--work", default="/tmp/scenes-gpu")
    pr.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "scenes_gpu.json"))
    pr.add_argument("--set", action="append", default=[], help="extra preset override")
    args = p.parse_args()
    if args.step == "prepare":
        prepare(args.cache, PREPARED)
    else:
        run(args)


if __name__ == "__main__":
    main()
