"""BM25 search over every segment of a keyword-index snapshot, hits re-read from Chroma whole."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from assistant.store import Store
from assistant.store.keyword.live import Snapshot
from assistant.store.keyword.segments import LANGUAGE, TOKEN_PATTERN, stemmer


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.tokenization import _infer_stopwords

    return frozenset(_infer_stopwords(LANGUAGE))


def stems(text: str) -> list[str]:
    """Return the stems BM25 sees in `text`, in order, repeats kept: what `bm25s.tokenize` makes of it
    (lower case, `TOKEN_PATTERN`, English stopwords dropped, Snowball stems)."""
    words = [w for w in re.findall(TOKEN_PATTERN, text.lower()) if w not in _stopwords()]
    return stemmer().stemWords(words) if words else []  # a stemmer per call: PyStemmer's is not thread-safe


def query_terms(text: str) -> dict[str, float]:
    """Return a question's BM25 query: each stem weighted by how often it occurs (as bm25s scores it)."""
    return {stem: float(n) for stem, n in Counter(stems(text)).items()}


class KeywordRetriever(BaseRetriever):
    """BM25 over each segment, the best `top_k` hits of all, each chunk once.

    The query is the question's stems, or `terms` (stem -> weight: a chunk scores the weighted sum of
    its BM25 scores for them) when given. `mask` (one weight per entry of `index.corpus`) keeps only
    the chunks a filter allows.
    """

    def __init__(
        self,
        store: Store,
        index: Snapshot,
        top_k: int,
        mask: np.ndarray | None,
        terms: Mapping[str, float] | None = None,
    ) -> None:
        self._store = store
        self._index = index
        self._top_k = top_k
        self._mask = mask
        self._terms = terms
        super().__init__()

    def _segment_hits(self, terms: Mapping[str, float]) -> list[tuple[float, str]]:
        hits: list[tuple[float, str]] = []
        start = 0
        for view, live in zip(self._index.views, self._index.live, strict=True):
            weights = live if self._mask is None else live * self._mask[start : start + len(live)]
            start += len(live)
            if not weights.any():
                continue
            scores = weighted_scores(view, terms)
            if scores is None:
                continue
            scores *= weights
            k = min(self._top_k, len(scores))
            best = np.argpartition(-scores, k - 1)[:k]
            hits.extend((float(scores[i]), view.corpus[i]["node_id"]) for i in best if scores[i] > 0)
        return hits

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        terms = self._terms if self._terms is not None else query_terms(query_bundle.query_str)
        best: dict[str, float] = {}
        # Ties by chunk id: the same order however the index is split into segments.
        for score, chunk_id in sorted(self._segment_hits(terms), key=lambda h: (-h[0], h[1])):
            best.setdefault(chunk_id, score)
        hits = list(best.items())[: self._top_k]
        records = self._store.get_chunks([chunk_id for chunk_id, _ in hits])
        # The same node objects as dense retrieval builds, so fusion sees one node, not two.
        return [
            NodeWithScore(node=_node(records[chunk_id]), score=score)
            for chunk_id, score in hits
            if chunk_id in records  # deleted since the segment was built
        ]


def weighted_scores(view: Any, terms: Mapping[str, float]) -> np.ndarray | None:
    """Return each chunk's BM25 score of one segment for weighted `terms` (None if it has none of them).

    Reads the segment's precomputed (chunk, stem) scores column by column, as bm25s does, weighting each.
    """
    data, indices, indptr = view.scores["data"], view.scores["indices"], view.scores["indptr"]
    columns = len(indptr) - 1  # bm25s numbers its empty token "" past the matrix: it has no column
    found = [(i, w) for t, w in terms.items() if (i := view.vocab_dict.get(t)) is not None and i < columns]
    if not found:
        return None
    scores = np.zeros(int(view.scores["num_docs"]), dtype=np.float32)
    for i, weight in found:
        begin, end = indptr[i], indptr[i + 1]
        scores[indices[begin:end]] += np.float32(weight) * data[begin:end]
    return scores


def _node(record: dict[str, Any]) -> Any:
    return metadata_dict_to_node(record["metadata"], text=record["document"])
