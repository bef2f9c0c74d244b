"""Image-level nearest neighbours, sec. 3.1 (i): exact cosine search, self excluded by index."""

from __future__ import annotations

import numpy as np
import torch


def knn_search(
    queries: torch.Tensor,
    query_pos: torch.Tensor,
    bank: torch.Tensor,
    k: int,
    excluded: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` most similar rows of `bank` for each query, as 0-based positions.

    `queries` (M, D) and `bank` (N, D) are L2-normalised, so the dot product is the cosine.
    Query m's own position `query_pos[m]` is excluded by index (the authors instead drop the first
    of a top-(k+1), which fails when an exact duplicate ranks first); positions where `excluded`
    is True (undecodable images) are never returned. Order: similarity descending, ties broken by
    the lower position, so the result does not depend on the search kernel. Cost is one (M, N)
    block: callers pass queries in blocks, never the whole N x N matrix.
    Returns (positions (M, k) int64, similarities (M, k) float32).
    """
    sims = queries @ bank.T
    rows = torch.arange(len(queries), device=sims.device)
    sims[rows, query_pos] = -torch.inf
    if excluded is not None:
        sims[:, excluded] = -torch.inf
    kth = torch.topk(sims, k, dim=1).values[:, -1:]
    if not torch.isfinite(kth).all():
        raise ValueError(f"fewer than k={k} usable images besides the query")
    # Everything >= the k-th value: usually exactly k entries, more only on ties at the boundary.
    r, c = (sims >= kth).nonzero(as_tuple=True)
    v = sims[r, c]
    r_np, c_np, v_np = r.cpu().numpy(), c.cpu().numpy(), v.cpu().numpy()
    order = np.lexsort((c_np, -v_np, r_np))
    starts = np.searchsorted(r_np[order], np.arange(len(queries)))
    take = order[starts[:, None] + np.arange(k)]
    return c_np[take].astype(np.int64), v_np[take].astype(np.float32)
