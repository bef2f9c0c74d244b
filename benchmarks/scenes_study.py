"""The scene-benchmark study: random init, BYOL, multi-crop BYOL, ORL, ORL with true boxes,
the supervised ceilings, and peer parity with lightly's BYOL.

    python benchmarks/scenes_study.py                 # full study (the scenes_study preset)
    python benchmarks/scenes_study.py --quick         # minutes (scenes_study_quick.yaml)

Interrupt it and run the same command again: finished units are reused, the rest resumes. The
tables go into the generated block of `--markdown` (prose around the block is kept), the numbers
into `scenes.json` beside it. The study's `peer_parity` configurations run
`benchmarks/peer_parity.py` (orl's BYOL and lightly's, every seed) when lightly is installed
(`pip install 'orl[bench]'`); without it they are skipped and the report says so.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from orl.artifacts import atomic_write_text
from orl.config import ConfigError
from orl.pipeline.study import run_study
from orl.pipeline.study_config import ResolvedStudy, resolve_study
from orl.pipeline.study_report import scenes_json, splice, study_markdown
from orl.presets import PRESET_DIR

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=None, help="study YAML (default: the full study)")
    p.add_argument("--quick", action="store_true", help="the scenes_study_quick preset")
    p.add_argument(
        "--out", type=Path, default=None, help="work folder (default work/scenes-study[-quick])"
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--cache", type=Path, default=None, help="package cache shared between runs")
    p.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="report to update (default: docs/results/scenes.md, or OUT/scenes.md)",
    )
    p.add_argument(
        "--no-eval", action="store_true", help="pre-training only (a later run reuses it)"
    )
    args = p.parse_args(argv)
    name = "scenes_study_quick.yaml" if args.quick else "scenes_study.yaml"
    config = args.config or PRESET_DIR / name
    out = args.out or ROOT / "work" / ("scenes-study-quick" if args.quick else "scenes-study")
    full = args.config is None and not args.quick and not args.overrides
    markdown = args.markdown or (
        ROOT / "docs" / "results" / "scenes.md" if full else out / "scenes.md"
    )
    try:
        study = resolve_study(config, args.overrides)
        results = run_study(study, out, args.cache, evaluate=not args.no_eval)
        if args.no_eval:
            return 0
        peers = peer_parity(study, out)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python benchmarks/scenes_study.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    old = markdown.read_text(encoding="utf-8") if markdown.exists() else ""
    atomic_write_text(splice(old, study_markdown(results, command.strip(), peers)), markdown)
    numbers = markdown.with_suffix(".json")
    atomic_write_text(json.dumps(scenes_json(results, peers), indent=1) + "\n", numbers)
    print(json.dumps({"results": str(out / "results.json"), "markdown": str(markdown)}))
    return 0


def peer_parity(study: ResolvedStudy, out: Path) -> dict[str, Any]:
    """Every `peer_parity` configuration: orl's BYOL and lightly's at the study's preset with
    the configuration's overrides, the study's seeds, scored like the study's rows."""
    if not study.cfg.peer_parity:
        return {}
    try:
        import peer_parity as peer  # benchmarks/peer_parity.py; needs lightly
    except ImportError as exc:
        print(f"peer parity skipped: {exc} (pip install 'orl[bench]')", file=sys.stderr)
        return {spec.name: {"skipped": str(exc)} for spec in study.cfg.peer_parity}
    spec_train, ev = study.cfg.train, study.cfg.eval
    scenes = Path(study.cfg.scenes_dir) if study.cfg.scenes_dir else out / "scenes" / "benchmark"
    base = [f"{k}={json.dumps(v)}" for k, v in spec_train.overrides.items()]
    summaries: dict[str, Any] = {}
    for spec in study.cfg.peer_parity:
        folder = out / "peer_parity" / spec.name
        argv = [
            "--config", str(study.base_dir / (spec_train.config or "scenes_train.yaml")),
            "--scenes", str(scenes), "--out", str(folder),
            "--threads", str(torch.get_num_threads()),
            "--seeds", *map(str, study.cfg.seeds), "--costs", ",".join(f"{c:g}" for c in ev.costs),
            "--crop-size", str(ev.crop_size), "--jobs", str(ev.jobs),
            *(["--image-size", str(ev.image_size)] if ev.image_size else []),
            *(f"--set={o}" for o in [*base, *spec.overrides]),
        ]  # fmt: skip
        if peer.main(argv) != 0:
            raise ValueError(f"peer parity '{spec.name}' failed; see the lines above")
        summaries[spec.name] = {
            "overrides": spec.overrides,
            **json.loads((folder / "summary.json").read_text(encoding="utf-8")),
        }
    return summaries


if __name__ == "__main__":
    raise SystemExit(main())
