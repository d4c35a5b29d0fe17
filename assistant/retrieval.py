"""Retrieval over the store through llama-index: dense top-k, one passage per paper."""

from __future__ import annotations

import math
from collections.abc import Sequence

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeWithScore

from assistant.schema import Passage
from assistant.store import Store

# Chunks fetched per wanted paper before collapsing: a paper has at most a few chunks.
OVERFETCH = 3


def cosine_from_chroma(score: float | None) -> float:
    """Undo ChromaVectorStore's `exp(-distance)` (cosine space: distance = 1 - cos) to get cos."""
    # SEE: llama_index/vector_stores/chroma/base.py `_query`: similarity_score = math.exp(-distance)
    return 1.0 + math.log(score) if score and score > 0 else -1.0


def one_per_paper(hits: Sequence[NodeWithScore], top_k: int) -> list[Passage]:
    """Keep the best-scoring chunk of each paper, in rank order, up to `top_k` papers."""
    passages: dict[str, Passage] = {}
    for hit in hits:
        meta = dict(hit.node.metadata)
        arxiv_id = str(meta.get("arxiv_id", hit.node.node_id.split("#")[0]))
        if arxiv_id in passages:
            continue
        passages[arxiv_id] = Passage(
            arxiv_id=arxiv_id,
            title=str(meta.get("title") or "") or None,
            score=round(cosine_from_chroma(hit.score), 4),
            text=hit.node.get_content(),
            metadata=meta,
        )
    ranked = sorted(passages.values(), key=lambda p: p.score, reverse=True)
    return ranked[:top_k]


class DenseRetriever:
    """Nearest chunks by cosine similarity of MiniLM vectors."""

    name = "dense"

    def __init__(self, store: Store, embed_model: BaseEmbedding) -> None:
        self._index = VectorStoreIndex.from_vector_store(store.vector_store(), embed_model=embed_model)

    def retrieve(self, query: str, top_k: int) -> list[Passage]:
        """Return up to `top_k` papers' best passages for `query`, best first."""
        retriever = self._index.as_retriever(similarity_top_k=top_k * OVERFETCH)
        return one_per_paper(retriever.retrieve(query), top_k)
