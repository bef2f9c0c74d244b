"""Top-ranked RoI pair retrieval, sec. 3.1 (iii)."""

from __future__ import annotations

import numpy as np


def num_pairs(num_query_boxes: int, ratio: float) -> int:
    """The authors' count `max(1, int(ratio * B_q))`: 10% of the query's boxes, not of B_q x B_k."""
    return max(1, int(ratio * num_query_boxes))


def top_pairs(fq: np.ndarray, fk: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Global top entries of S = F_q F_k^T (cosine, features L2-normalised).

    No threshold, no one-to-one constraint, no de-duplication (as the authors). Ties are broken by
    the lower flat index a * B_k + b (a stable sort), so the result is deterministic.
    Returns (pairs (P, 2) int64 [box in q, box in k], similarities (P,) float32).
    """
    s = np.asarray(fq, dtype=np.float32) @ np.asarray(fk, dtype=np.float32).T
    flat = s.reshape(-1)
    n = min(num_pairs(len(fq), ratio), flat.size)
    best = np.argsort(-flat, kind="stable")[:n]
    a, b = np.divmod(best, s.shape[1])
    return np.stack([a, b], axis=1).astype(np.int64), flat[best].astype(np.float32)
