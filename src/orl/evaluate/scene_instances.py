"""The scene benchmark's instance protocol: the same object recognised across scenes.

ORL's inter-image RoI pairs (sec. 3.1 "Stage 3") train exactly this: two occurrences of one object
in different scenes should have similar features. The `test_seen` split (`orl scenes --test-seen`)
holds new scenes of the TRAIN object instances on the TEST backgrounds, at new positions, scales,
rotations, occlusions and (with an appearance style) colours and blur. Each of its object crops is a
query; the gallery is every object crop of the train split:

- retrieval: rank the gallery by cosine similarity of L2-normalised features; `instance_r1` is the
  share of queries whose nearest gallery crop shows the same instance, `instance_map` the mean
  all-point average precision of the ranking (positives: the query's instance);
- `instance_top1`: a linear classifier over instance ids, trained on the gallery crops, scored on
  the queries.
"""

from __future__ import annotations

import numpy as np
import torch

from orl.evaluate.average_precision import all_point_ap, precision_recall
from orl.evaluate.features import l2_normalize


@torch.no_grad()
def instance_retrieval(
    gallery: np.ndarray,
    gallery_ids: np.ndarray,
    queries: np.ndarray,
    query_ids: np.ndarray,
    chunk: int = 512,
) -> dict[str, float]:
    """Recall@1 and mean AP of ranking `gallery` rows for each query by cosine similarity.

    Queries whose instance has no gallery crop are skipped (their AP is undefined); the count of
    scored queries is returned as `instance_queries`.
    """
    bank = torch.from_numpy(l2_normalize(gallery))
    ids = np.asarray(gallery_ids)
    present = set(ids.tolist())
    keep = np.array([q in present for q in np.asarray(query_ids).tolist()], dtype=bool)
    if not keep.any():
        raise ValueError("no query instance occurs in the gallery")
    q_feats, q_ids = l2_normalize(queries[keep]), np.asarray(query_ids)[keep]
    hits, aps = [], []
    for start in range(0, len(q_feats), chunk):
        sims = (torch.from_numpy(q_feats[start : start + chunk]) @ bank.T).numpy()
        for row, qid in zip(sims, q_ids[start : start + chunk].tolist(), strict=True):
            labels = np.where(ids == qid, 1, -1)
            hits.append(labels[int(np.argmax(row))] == 1)
            aps.append(all_point_ap(*precision_recall(labels, row.astype(np.float64))))
    return {
        "instance_r1": float(np.mean(hits)),
        "instance_map": float(np.mean(aps)),
        "instance_queries": len(q_ids),
    }
