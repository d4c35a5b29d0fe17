"""Fusing the dense and BM25 rankings into one (llama-index's `QueryFusionRetriever` modes, one query).

The score fusions are llama-index's, figure for figure: each list's scores scaled to 0-1 (by its
min and max, or `dist_based_score`: its mean +- 3 standard deviations), times the retriever's
weight, summed per chunk. `reciprocal_rerank` sums weight / (k + rank) instead (weights scaled to
average 1); with equal weights and k = 60 it is llama-index's, which has neither as a parameter.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from llama_index.core.schema import NodeWithScore

FUSIONS = ("relative_score", "reciprocal_rerank", "dist_based_score")


def fuse(
    rankings: Sequence[list[NodeWithScore]], weights: Sequence[float], mode: str, *, rrf_k: float = 60.0
) -> list[NodeWithScore]:
    """Return the chunks of all `rankings` (each best first), best first by `mode`, each once.

    `weights` (one per ranking) are normalised to sum to 1. The nodes' scores become the fused ones.
    """
    total = sum(weights)
    shares = [w / total for w in weights] if total else [1 / len(weights)] * len(weights)
    fused: dict[str, NodeWithScore] = {}
    for ranking, share in zip(rankings, shares, strict=True):
        for rank, hit in enumerate(_scaled(ranking, mode)):
            if mode == "reciprocal_rerank":  # equal weights: llama-index's 1 / (k + rank) each
                score = share * len(shares) / (rank + rrf_k)
            else:
                score = share * (hit.score or 0.0)
            key = hit.node.node_id
            if key in fused:
                fused[key].score = (fused[key].score or 0.0) + score
            else:
                fused[key] = NodeWithScore(node=hit.node, score=score)
    return sorted(fused.values(), key=lambda h: h.score or 0.0, reverse=True)


def _scaled(ranking: list[NodeWithScore], mode: str) -> list[NodeWithScore]:
    if mode == "reciprocal_rerank":
        return sorted(ranking, key=lambda h: h.score or 0.0, reverse=True)
    if mode not in FUSIONS:
        raise ValueError(f"unknown fusion {mode!r}; use one of: {', '.join(FUSIONS)}")
    if not ranking:
        return []
    scores = [h.score or 0.0 for h in ranking]
    if mode == "dist_based_score":
        mean, spread = statistics.fmean(scores), statistics.pstdev(scores)
        low, high = mean - 3 * spread, mean + 3 * spread
    else:
        low, high = min(scores), max(scores)
    out = []
    for hit, score in zip(ranking, scores, strict=True):
        scaled = (1.0 if high > 0 else 0.0) if high == low else (score - low) / (high - low)
        out.append(NodeWithScore(node=hit.node, score=scaled))
    return out
