"""The scene-benchmark study: random init, BYOL, multi-crop BYOL, ORL, ORL with true boxes.

    python benchmarks/scenes_study.py                 # full study (the scenes_study preset)
    python benchmarks/scenes_study.py --quick         # minutes (scenes_study_quick.yaml)

Interrupt it and run the same command again: finished units are reused, the rest resumes. The
tables go into the generated block of `--markdown` (prose around the block is kept).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from orl.artifacts import atomic_write_text
from orl.config import ConfigError
from orl.pipeline.study import run_study
from orl.pipeline.study_config import resolve_study
from orl.pipeline.study_report import splice, study_markdown
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
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.no_eval:
        return 0
    command = "python benchmarks/scenes_study.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    old = markdown.read_text(encoding="utf-8") if markdown.exists() else ""
    atomic_write_text(splice(old, study_markdown(results, command.strip())), markdown)
    print(json.dumps({"results": str(out / "results.json"), "markdown": str(markdown)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
