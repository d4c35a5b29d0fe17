"""Retrievers over the store: dense, BM25 and their fusion, with metadata filters, one passage per paper.

Package `retrieve`: from a question to ranked passages: the limits every entry point applies
(`limits`), a follow-up condensed into a stand-alone query (`condense`), dense / BM25 / hybrid
retrieval with filters (here), the passages' sentences scored against the question (`sentences`)
and the rerank stage (`rerank`). It may import every stage up to `llms`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from assistant.config import RetrievalSettings
from assistant.errors import InputError
from assistant.retrieve.feedback import is_request, keyword_query, rm3, rocchio
from assistant.retrieve.fusion import fuse
from assistant.schema import Passage
from assistant.sources.ids import normalize_id
from assistant.store import Store, keyword
from assistant.store.records import date_number

RETRIEVERS = ("dense", "bm25", "hybrid")
# Chunks fetched per wanted paper before collapsing: a paper has at most a few chunks.
OVERFETCH = 3


@dataclass(frozen=True)
class Filters:
    """Metadata filters; every one given must hold. An empty match returns nothing."""

    categories: tuple[str, ...] = ()  # any of: exact ("cs.CL") or archive prefix ("cs.*")
    since: str | None = None  # YYYY-MM-DD, inclusive
    until: str | None = None
    author: str | None = None  # case-insensitive substring of any author name
    ids: tuple[str, ...] = ()

    @classmethod
    def make(cls, value: Filters | dict[str, Any] | None) -> Filters:
        """Accept a `Filters`, a dict of its fields (lists or comma-separated strings), or None."""
        if value is None:
            return cls()
        if isinstance(value, dict):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise InputError(
                    f"unknown filter(s) {sorted(unknown)}; use {sorted(cls.__dataclass_fields__)}"
                )
            value = cls(
                categories=_listed(value.get("categories")),
                since=value.get("since") or None,
                until=value.get("until") or None,
                author=value.get("author") or None,
                ids=_listed(value.get("ids")),
            )
        for name in ("since", "until"):
            date = getattr(value, name)
            if date is not None and not _valid_date(date):
                raise InputError(f"filter {name}={date!r} is not a date; write YYYY-MM-DD")
        return value

    def __bool__(self) -> bool:
        return bool(self.categories or self.since or self.until or self.author or self.ids)

    def where(self, author_ids: Sequence[str] | None = None) -> dict[str, Any] | None:
        """Translate to a Chroma `where` clause; authors come in as the ids that match them."""
        clauses: list[dict[str, Any]] = []
        if self.categories:
            options = [_category_clause(c) for c in self.categories]
            clauses.append(options[0] if len(options) == 1 else {"$or": options})
        if self.since:
            clauses.append({"date": {"$gte": date_number(self.since)}})
        if self.until:
            clauses.append({"date": {"$lte": date_number(self.until)}})
        if self.ids:
            clauses.append({"arxiv_id": {"$in": [normalize_id(i) for i in self.ids]}})
        if author_ids is not None:
            clauses.append({"arxiv_id": {"$in": list(author_ids)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def matches(self, entry: dict[str, Any]) -> bool:
        """Whether a chunk's catalog entry passes every filter."""
        if self.categories and not any(_category_match(c, entry) for c in self.categories):
            return False
        date = int(entry.get("date") or 0)
        if self.since and date < date_number(self.since):
            return False
        if self.until and date > date_number(self.until):
            return False
        if self.ids and entry.get("arxiv_id") not in {normalize_id(i) for i in self.ids}:
            return False
        return not (self.author and self.author.lower() not in str(entry.get("authors", "")).lower())


def _listed(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else (value or ())
    return tuple(str(item).strip() for item in items if str(item).strip())


def _valid_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        return False
    return True


def _category_clause(category: str) -> dict[str, Any]:
    if category.endswith(".*"):
        return {"archives": {"$contains": category[:-2]}}
    return {"categories": {"$contains": category}}


def _category_match(category: str, entry: dict[str, Any]) -> bool:
    if category.endswith(".*"):
        return category[:-2] in (entry.get("archives") or ())
    return category in (entry.get("categories") or ())


class Retrieval:
    """Dense, BM25 or hybrid retrieval with filters; each passage scored by cosine to the question.

    `settings` (read at each question) chooses the fusion, the BM25 query's scaffolding and the
    pseudo-relevance feedback; the store's BM25 parameters choose its keyword index.
    """

    def __init__(self, store: Store, embed_model: BaseEmbedding, settings: RetrievalSettings) -> None:
        self.store = store
        self.embed_model = embed_model
        self.settings = settings
        self._index = VectorStoreIndex.from_vector_store(store.vector_store(), embed_model=embed_model)
        self.keywords = keyword.KeywordIndex(store)

    def keyword_index(self) -> keyword.Snapshot:
        """Return the BM25 index to search now, with every chunk written so far (see `KeywordIndex`)."""
        return self.keywords.snapshot()

    def _dense(self, n: int, where: dict[str, Any] | None) -> BaseRetriever:
        kwargs = {"vector_store_kwargs": {"where": where}} if where else {}
        return self._index.as_retriever(similarity_top_k=n, **kwargs)

    def retrieve(
        self, query: str, top_k: int, *, kind: str = "hybrid", filters: Filters | None = None
    ) -> list[Passage]:
        """Return up to `top_k` papers' best passages for `query`, best first."""
        if kind not in RETRIEVERS:
            raise InputError(f"unknown retriever {kind!r}; use one of: {', '.join(RETRIEVERS)}")
        selection = self._select(filters or Filters(), kind)
        if selection is None:
            return []
        config = self.settings
        vector = self.embed_model.get_query_embedding(query)
        terms = keyword.query_terms(keyword_query(query, config.strip_scaffolding))
        dense_weight = config.dense_weight
        if config.question_dense_shift and is_request(query):
            dense_weight = min(1.0, max(0.0, dense_weight + config.question_dense_shift))
        search = _Search(self, kind, selection, top_k * OVERFETCH, query, dense_weight)
        hits = search.run(vector, terms)
        m = config.feedback_papers
        if m and hits and (config.rm3_weight or config.rocchio_weight):
            top = list(_best_per_paper(hits).values())[:m]
            if config.rm3_weight and kind != "dense":
                texts = [keyword.text_of(h.node.get_content(), h.node.metadata) for h in top]
                scores = [h.score or 0.0 for h in top]
                terms = rm3(terms, texts, scores, n_terms=config.feedback_terms, weight=config.rm3_weight)
            moved = vector
            if config.rocchio_weight and kind != "bm25":
                stored = self.store.get_chunks([h.node.node_id for h in top], embeddings=True)
                vectors = [v["embedding"] for h in top if (v := stored.get(h.node.node_id)) is not None]
                moved = rocchio(vector, vectors, config.rocchio_weight)
            hits = search.run(moved, terms)
        # Scored by cosine to the question itself, whatever searched: the relevance threshold reads it.
        return self._passages(hits, vector, top_k)

    def nearest(
        self,
        vector: Sequence[float] | np.ndarray,
        top_k: int,
        *,
        filters: Filters | None = None,
        exclude: str = "",
    ) -> list[Passage]:
        """Return up to `top_k` papers (not `exclude`) whose passages lie closest to `vector`, best first."""
        selection = self._select(filters or Filters(), "dense")
        if selection is None:
            return []
        _, where, _ = selection
        others = {"arxiv_id": {"$ne": exclude}}
        where = {"$and": [where, others]} if where else others
        # Python floats: Chroma refuses numpy ones.
        query = QueryBundle("", embedding=np.asarray(vector, dtype=float).tolist())
        hits = self._dense(top_k * OVERFETCH, where).retrieve(query)
        return self._passages(hits, vector, top_k)

    def _select(
        self, filters: Filters, kind: str
    ) -> tuple[Any, dict[str, Any] | None, np.ndarray | None] | None:
        """Return the keyword index `kind` needs (or None), the Chroma `where` and the index's mask of
        `filters`; None when no paper passes them."""
        mask = None
        author_ids = None
        # One snapshot for the whole question: a mask made over one would not fit a newer one.
        index = self.keyword_index() if kind != "dense" or filters.author else None
        if filters and index is not None:
            corpus = index.corpus
            mask = np.fromiter((filters.matches(e) for e in corpus), dtype=np.int8, count=len(corpus))
            if not mask.any():
                return None
            if filters.author:
                author_ids = sorted({corpus[i]["arxiv_id"] for i in np.flatnonzero(mask)})
        return index, filters.where(author_ids), mask

    def _passages(self, hits: Sequence[NodeWithScore], query_vector: Any, top_k: int) -> list[Passage]:
        # In rank order: a paper's first chunk is its best.
        chosen = list(_best_per_paper(hits).items())[:top_k]
        vectors = self.store.get_chunks([h.node.node_id for _, h in chosen], embeddings=True)
        query = np.asarray(query_vector, dtype=np.float32)
        passages = []
        for arxiv_id, hit in chosen:
            vector = vectors.get(hit.node.node_id, {}).get("embedding")
            cosine = (
                float(np.dot(query, np.asarray(vector, dtype=np.float32))) if vector is not None else -1.0
            )
            meta = dict(hit.node.metadata)
            meta["rank_score"] = hit.score
            passages.append(
                Passage(
                    arxiv_id=arxiv_id,
                    title=str(meta.get("title") or "") or None,
                    score=round(cosine, 4),
                    text=hit.node.get_content(),
                    metadata=meta,
                )
            )
        return passages


def _best_per_paper(hits: Sequence[NodeWithScore]) -> dict[str, NodeWithScore]:
    """Return each paper's first (best) hit, in rank order."""
    best: dict[str, NodeWithScore] = {}
    for hit in hits:
        best.setdefault(str(hit.node.metadata.get("arxiv_id", hit.node.node_id.split("#")[0])), hit)
    return best


@dataclass
class _Search:
    """One question's search: the retrievers `kind` names over `n` chunks each, fused."""

    retrieval: Retrieval
    kind: str
    selection: tuple[Any, dict[str, Any] | None, np.ndarray | None]
    n: int
    query: str
    dense_weight: float
    _dense_hits: tuple[list[float], list[NodeWithScore]] | None = None

    def run(self, vector: Sequence[float], terms: dict[str, float]) -> list[NodeWithScore]:
        """Return the fused chunks for this query vector and these weighted BM25 terms, best first."""
        index, where, mask = self.selection
        config, rankings, weights = self.retrieval.settings, [], []  # type: ignore[var-annotated]
        if self.kind in ("dense", "hybrid"):
            vector = list(vector)
            # A second search with the same vector (RM3 alone) reuses the first one's dense hits.
            if self._dense_hits is None or self._dense_hits[0] != vector:
                bundle = QueryBundle(self.query, embedding=vector)
                self._dense_hits = (vector, self.retrieval._dense(self.n, where).retrieve(bundle))
            rankings.append([NodeWithScore(node=h.node, score=h.score) for h in self._dense_hits[1]])
            weights.append(self.dense_weight)
        if index is not None and self.kind in ("bm25", "hybrid"):
            bm25 = keyword.KeywordRetriever(self.retrieval.store, index, self.n, mask, terms)
            rankings.append(bm25.retrieve(QueryBundle(self.query)))
            weights.append(1 - self.dense_weight)
        if len(rankings) == 1:
            return rankings[0]
        return fuse(rankings, weights, config.fusion, rrf_k=config.rrf_k)[: self.n]
