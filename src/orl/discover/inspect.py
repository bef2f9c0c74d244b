"""`orl corr inspect`: what a correspondence store holds, in numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from orl.discover.store import FLAG_FALLBACK, FLAG_SKIPPED, CorrespondenceStore

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def _quantiles(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    return [round(float(v), 4) for v in np.quantile(finite, QUANTILES)]


def store_summary(store: CorrespondenceStore) -> dict[str, Any]:
    """Counts and distributions: boxes and pairs per image, pair similarity, fallbacks, skips."""
    boxes_per_image = np.diff(store.array("box_offsets"))
    pairs_per_row = np.diff(store.array("pair_offsets"))
    pairs_per_image = pairs_per_row.reshape(store.num_images, store.k).sum(axis=1)
    flags = np.asarray(store.array("flags"))
    sims = np.asarray(store.array("pair_sims"), dtype=np.float32)
    return {
        "path": str(store.path),
        "images": store.num_images,
        "k": store.k,
        "boxes": int(boxes_per_image.sum()),
        "pairs": int(pairs_per_row.sum()),
        "quantiles_at": list(QUANTILES),
        "boxes_per_image": _quantiles(boxes_per_image.astype(np.float64)),
        "pairs_per_image": _quantiles(pairs_per_image.astype(np.float64)),
        "pair_similarity": _quantiles(sims),
        "fallback_images": int(np.count_nonzero(flags & FLAG_FALLBACK)),
        "skipped_images": int(np.count_nonzero(flags & FLAG_SKIPPED)),
        "skipped_examples": store.meta.get("skipped_images", [])[:10],
        "fingerprint": store.fingerprint,
        "checkpoint_sha256": store.meta.get("checkpoint_sha256", ""),
        "counts": store.meta.get("counts", {}),
    }


def format_summary(summary: dict[str, Any]) -> str:
    q = ", ".join(f"{v:g}" for v in summary["quantiles_at"])
    lines = [
        f"store            {summary['path']}",
        f"images           {summary['images']} (k={summary['k']})",
        f"boxes            {summary['boxes']}",
        f"pairs            {summary['pairs']}",
        f"quantiles at     [{q}]",
        f"boxes/image      {summary['boxes_per_image']}",
        f"pairs/image      {summary['pairs_per_image']}",
        f"pair similarity  {summary['pair_similarity']}",
        f"fallback images  {summary['fallback_images']} (no proposal survived the filter)",
        f"skipped images   {summary['skipped_images']} (undecodable) {summary['skipped_examples']}",
        f"data set         {summary['fingerprint'][:16]}",
        f"checkpoint       {summary['checkpoint_sha256'][:16]}",
    ]
    counts = summary["counts"]
    if "roi_forwards_ours" in counts:
        ratio = counts["roi_forwards_authors"] / max(1, counts["roi_forwards_ours"])
        lines.append(
            f"RoI forwards     {counts['roi_forwards_ours']} (authors' scheme: "
            f"{counts['roi_forwards_authors']}, {ratio:.1f}x more)"
        )
    return "\n".join(lines)
