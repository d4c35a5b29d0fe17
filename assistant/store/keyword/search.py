"""BM25 search over every segment of a keyword-index snapshot, hits re-read from Chroma whole."""

from __future__ import annotations

from typing import Any

import numpy as np
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from assistant.store import Store
from assistant.store.keyword.live import Snapshot
from assistant.store.keyword.segments import TOKEN_PATTERN, stemmer


class KeywordRetriever(BaseRetriever):
    """llama-index's BM25Retriever on each segment; the best `top_k` hits of all, each chunk once.

    `mask` (one weight per entry of `index.corpus`) keeps only the chunks a filter allows.
    """

    def __init__(self, store: Store, index: Snapshot, top_k: int, mask: np.ndarray | None) -> None:
        self._store = store
        self._index = index
        self._top_k = top_k
        self._mask = mask
        super().__init__()

    def _segment_hits(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        from llama_index.retrievers.bm25 import BM25Retriever

        hits: list[NodeWithScore] = []
        start = 0
        for view, live in zip(self._index.views, self._index.live, strict=True):
            weights = live if self._mask is None else live * self._mask[start : start + len(live)]
            start += len(live)
            if not weights.any():
                continue
            # Built per query: with an existing index the constructor is cheap (no re-indexing).
            bm25 = BM25Retriever(
                existing_bm25=view,
                stemmer=stemmer(),
                similarity_top_k=min(self._top_k, len(live)),
                token_pattern=TOKEN_PATTERN,
                corpus_weight_mask=None if weights.all() else weights.tolist(),
            )
            hits.extend(h for h in bm25.retrieve(query_bundle) if (h.score or 0) > 0)
        return hits

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        best: dict[str, NodeWithScore] = {}
        for hit in sorted(self._segment_hits(query_bundle), key=lambda h: -(h.score or 0)):
            best.setdefault(hit.node.node_id, hit)
        hits = list(best.values())[: self._top_k]
        records = self._store.get_chunks([h.node.node_id for h in hits])
        # The same node objects as dense retrieval builds, so fusion sees one node, not two.
        return [
            NodeWithScore(node=_node(records[h.node.node_id]), score=h.score)
            for h in hits
            if h.node.node_id in records  # deleted since the segment was built
        ]


def _node(record: dict[str, Any]) -> Any:
    return metadata_dict_to_node(record["metadata"], text=record["document"])
