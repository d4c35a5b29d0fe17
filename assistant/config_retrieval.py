"""The `[retrieval]` settings: retriever, fusion, BM25 and feedback levers, rerank, relevance thresholds."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import field_validator

from assistant.config_fields import Section, setting

# The store sizes the relevance thresholds were measured at (docs/measured.md "Knowing when not to answer"):
# min_score_* on 2,000 papers, their growth up to 74,728; it is not extrapolated beyond.
CALIBRATED_PAPERS = 2_000
LARGEST_CALIBRATED = 75_000
# Most papers one question may retrieve, wherever it comes from (a flag, the API, the page).
MAX_TOP_K = 100
RERANK_KINDS = ("none", "sentences", "llm")


class RetrievalSettings(Section):
    top_k: int = setting(5, "papers retrieved per question", "ASSISTANT_TOP_K", ge=1, le=MAX_TOP_K)
    retriever: Literal["dense", "bm25", "hybrid"] = setting(
        "hybrid", "dense (MiniLM), bm25 (keywords) or hybrid (both, fused)", "ASSISTANT_RETRIEVER"
    )
    fusion: Literal["relative_score", "reciprocal_rerank", "dist_based_score"] = setting(
        "dist_based_score", "how hybrid fuses the dense and BM25 rankings", "ASSISTANT_FUSION"
    )
    # BM25 is the stronger ranking on arXiv abstracts (exact method names, datasets); an equal share
    # let the weaker dense ranking outvote it (docs/measured.md "Retrieval": 0.3 calibrated there).
    dense_weight: float = setting(
        0.3,
        "dense ranking's share in hybrid fusion, BM25 gets the rest (reciprocal_rerank: 0.5 = unweighted)",
        "ASSISTANT_DENSE_WEIGHT",
        ge=0,
        le=1,
    )
    # Levers of issue #27, each measured alone, then together (docs/measured.md "Retrieval levers"): the
    # defaults are the combination chosen on SciFact's train claims and SPAR that leaves titles as they were.
    strip_scaffolding: Literal["off", "phrases", "words"] = setting(
        "words",
        'drop request phrasing ("Are there any papers that", "I am looking for work on") from the BM25 '
        'query: phrases, or words (phrases and question words: "what", "how", "can", "you")',
        "ASSISTANT_STRIP_SCAFFOLDING",
    )
    bm25_k1: float = setting(1.2, "BM25 term-frequency saturation k1", "ASSISTANT_BM25_K1", ge=0, le=10)
    bm25_b: float = setting(0.4, "BM25 document-length normalisation b", "ASSISTANT_BM25_B", ge=0, le=1)
    bm25_method: Literal["lucene", "robertson", "atire"] = setting(
        "lucene",
        "BM25 variant (bm25s); a k1, b or variant not indexed yet builds its keyword index once",
        "ASSISTANT_BM25_METHOD",
    )
    question_dense_shift: float = setting(
        0.2,
        "added to dense_weight for a question or request (a '?', 'what', 'how', 'find'..., scaffolding), "
        "not for a claim, a title or keywords",
        "ASSISTANT_QUESTION_DENSE_SHIFT",
        ge=-1,
        le=1,
    )
    rrf_k: float = setting(60.0, "reciprocal_rerank: k in 1 / (k + rank)", "ASSISTANT_RRF_K", gt=0, le=1000)
    feedback_papers: int = setting(
        0,
        "pseudo-relevance feedback: top fused papers a second search learns from; 0 = one search",
        "ASSISTANT_FEEDBACK_PAPERS",
        ge=0,
        le=50,
    )
    feedback_terms: int = setting(
        10, "RM3: feedback terms added to the BM25 query", "ASSISTANT_FEEDBACK_TERMS", ge=1, le=200
    )
    rm3_weight: float = setting(
        0.0,
        "RM3: the feedback terms' share of the BM25 query; 0 = unchanged",
        "ASSISTANT_RM3_WEIGHT",
        ge=0,
        le=1,
    )
    rocchio_weight: float = setting(
        0.0,
        "Rocchio: the feedback papers' centroid's share of the query vector; 0 = unchanged",
        "ASSISTANT_ROCCHIO_WEIGHT",
        ge=0,
        le=1,
    )
    rerank: str = setting(
        "none",
        "re-order the fused candidates: none, sentences (bundled MiniLM, best sentences), "
        "llm (the configured answerer) or tei:URL (a text-embeddings-inference reranker)",
        "ASSISTANT_RERANK",
    )
    rerank_candidates: int = setting(
        10,
        "fused papers the rerank stage re-orders before keeping top_k",
        "ASSISTANT_RERANK_CANDIDATES",
        ge=1,
        le=100,
    )
    # Relevance thresholds, calibrated per retriever (docs/measured.md "Knowing when not to answer"): a
    # passage counts only if one of its sentences has at least this cosine to the question.
    min_score_dense: float = setting(
        0.38, "decline below this best-sentence cosine (dense)", "ASSISTANT_MIN_SCORE_DENSE", ge=-1, le=1
    )
    min_score_bm25: float = setting(
        0.38, "decline below this best-sentence cosine (bm25)", "ASSISTANT_MIN_SCORE_BM25", ge=-1, le=1
    )
    min_score_hybrid: float = setting(
        0.38, "decline below this best-sentence cosine (hybrid)", "ASSISTANT_MIN_SCORE_HYBRID", ge=-1, le=1
    )

    # An off-topic question finds closer near misses in a bigger store (more sentences to match a
    # word by chance: "HAMLET" for "What is the plot of Hamlet?"); real questions barely gain.
    min_score_growth: float = setting(
        0.07,
        f"added to min_score_* per tenfold growth of the store beyond {CALIBRATED_PAPERS:,} papers"
        f" (up to {LARGEST_CALIBRATED:,})",
        "ASSISTANT_MIN_SCORE_GROWTH",
        ge=0,
        le=1,
    )

    @field_validator("rerank")
    @classmethod
    def _rerank_form(cls, value: str) -> str:
        value = value.strip()
        if value not in RERANK_KINDS and not re.fullmatch(r"tei:https?://\S+", value):
            raise ValueError(f"use one of: {', '.join(RERANK_KINDS)}, tei:http://host:port")
        return value

    def min_score(self, retriever: str | None = None, papers: int = 0) -> float:
        """Return the relevance threshold of `retriever` (default: the configured one) for `papers` stored."""
        base = float(getattr(self, f"min_score_{retriever or self.retriever}"))
        size = min(max(papers, CALIBRATED_PAPERS), LARGEST_CALIBRATED)
        return base + self.min_score_growth * math.log10(size / CALIBRATED_PAPERS)
