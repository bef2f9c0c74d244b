"""Cost of stage 2 and agreement of the RoIAlign mode with the faithful warp mode.

    python -m orl.discover.benchmark --checkpoint CKPT --data DATA --out DIR [--set key=value ...]

Runs `orl discover` twice on the same data (warp, then roi-align, sharing the proposal cache) in
one process and prints per-step seconds per image, RoI backbone passes (ours against the
authors' re-embedding per query), and how many faithful pairs the RoIAlign mode reproduces.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from orl.config import add_set_option, load_config
from orl.discover.config import DiscoverConfig
from orl.discover.pipeline import discover
from orl.discover.store import CorrespondenceStore

STEPS = ("proposals_s", "image_embed_s", "knn_s", "roi_embed_s", "pairs_s", "merge_s")


def pair_agreement(a: CorrespondenceStore, b: CorrespondenceStore) -> dict[str, float]:
    """Over every (query, neighbour): share of a's pairs found in b, and top-1 pair equality."""
    if not np.array_equal(a.array("neighbours"), b.array("neighbours")):
        raise ValueError("the two stores have different neighbours; compare like with like")
    overlap, top1 = [], []
    for q in range(a.num_images):
        for j in range(a.k):
            pa = {tuple(p) for p in a.pair_index(q, j).tolist()}
            pb = {tuple(p) for p in b.pair_index(q, j).tolist()}
            overlap.append(len(pa & pb) / len(pa))
            top1.append(float(np.array_equal(a.pair_index(q, j)[0], b.pair_index(q, j)[0])))
    return {"pair_overlap": float(np.mean(overlap)), "top1_pair_equal": float(np.mean(top1))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    add_set_option(p, "--set k=10")
    args = p.parse_args(argv)
    cfg = load_config(DiscoverConfig, None, args.overrides)
    warp_dir = discover(cfg, args.checkpoint, args.data, args.out / "warp", resume=True)
    cache = str(args.out / "warp" / "cache" / "proposals")
    align_cfg = load_config(
        DiscoverConfig, None, [*args.overrides, "roi_mode=roi-align", f"proposal_cache={cache}"]
    )
    align_dir = discover(align_cfg, args.checkpoint, args.data, args.out / "align", resume=True)
    report: dict[str, object] = {}
    for name, folder in (("warp", warp_dir), ("roi-align", align_dir)):
        t = json.loads((folder / "timings.json").read_text())
        n = t["images"]
        st = CorrespondenceStore.open(folder)
        per_image = {k.removesuffix("_s"): round(t[k] / n, 4) for k in STEPS if k in t}
        report[name] = {
            "images": int(n),
            "seconds_per_image": per_image,
            "total_s": round(sum(t[k] for k in STEPS if k in t), 1),
            "counts": st.meta["counts"],
        }
    warp = CorrespondenceStore.open(warp_dir)
    report["roi_align_vs_warp"] = pair_agreement(warp, CorrespondenceStore.open(align_dir))
    c = warp.meta["counts"]
    report["roi_forward_ratio"] = round(c["roi_forwards_authors"] / c["roi_forwards_ours"], 2)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
