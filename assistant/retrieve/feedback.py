"""What the keyword side searches for, and pseudo-relevance feedback from a first fused ranking.

- Question scaffolding ("Are there any papers that...", "I am looking for work on...") says what
  kind of answer is wanted, not what it is about; in a BM25 query its words only add noise (every
  abstract "proposes" something), so `keyword_query` drops it. The dense side keeps the question.
- RM3 (Abdul-Jaleel et al. 2004; Anserini's `-rm3`): the BM25 query is mixed with the terms most
  frequent in the top fused papers, each paper weighted by its fused score.
- Rocchio (1971): the question's vector moved toward the centroid of the top papers' vectors.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from assistant.store import keyword

# Scaffolding: each pattern a way of asking for literature rather than naming a topic. Kept small and
# generic on purpose (not fitted to any benchmark's wording); measured in docs/measured.md "Retrieval levers".
_ASK = r"(?:^|[.?!;:]\s*|\b(?:please|can you|could you|would you|help me)\s+)"
SCAFFOLDING = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        # asking whether, or saying that, one looks for something: "Are there any", "I am looking for"
        r"\b(?:are|is) there (?:any|some)\b",
        r"\b(?:i am|i'm|we are|i was) (?:looking|searching) for\b",
        r"\b(?:looking|searching) for\b",
        r"\bdo you know (?:of |about )?",
        r"\b(?:i|we) (?:want|need|would like) to (?:find|read|know|learn)(?: about)?\b",
        # a request verb opening a sentence or after "please", "can you": "Provide me with", "List"
        _ASK
        + r"(?:provide|show|give|list|find|recommend|suggest|point|tell|search for)(?: me)?(?: with| to)?\b",
        # naming the literature itself: "papers", "work on", "studies that"
        r"\b(?:research )?(?:papers?|articles?|publications?|literature)\b",
        r"\b(?:works?|studies|study|research) (?:on|about|that|which|in|into)\b",
        # the frame of a question about methods: "which method", "papers that propose"
        r"\b(?:which|what) (?:methods?|approaches?|techniques?)\b",
        r"\bpropos(?:e|es|ed|ing)\b",
        # recency asked for: no abstract says it is recent
        r"\b(?:the )?(?:latest|most recent|recent)\b",
    )
)


# The words a question is built with that BM25's stopwords (Lucene's 33: "a", "the", "is", ...)
# keep: interrogatives, auxiliaries, pronouns and quantifiers. An abstract uses them too ("we show
# how", "which"), so in a query they match nearly everything a little.
FUNCTION_WORDS = re.compile(
    r"\b(?:what|which|who|whom|whose|how|why|when|where|do|does|did|can|could|would|should|"
    r"i|me|my|we|us|our|you|your|some|any|please|there|here|about)\b",
    re.IGNORECASE,
)
STRIPPING = ("off", "phrases", "words")


def keyword_query(question: str, strip: str = "phrases") -> str:
    """Return `question` without its scaffolding (itself if nothing else would be left).

    `strip`: `phrases` drops `SCAFFOLDING`; `words` also `FUNCTION_WORDS`; `off` nothing.
    """
    if strip not in STRIPPING:
        raise ValueError(f"unknown scaffolding stripping {strip!r}; use one of: {', '.join(STRIPPING)}")
    text = question
    for pattern in SCAFFOLDING if strip != "off" else ():
        text = pattern.sub(" ", text)
    if strip == "words":
        text = FUNCTION_WORDS.sub(" ", text)
    return text if keyword.stems(text) else question


# How a question or a request begins (a claim or a title rarely does).
_ASKING = re.compile(
    r"^\s*(?:what|which|who|how|why|when|where|is|are|was|were|do|does|did|can|could|should|would|"
    r"please|provide|show|give|list|find|recommend|suggest|search)\b",
    re.IGNORECASE,
)


_WORD = re.compile(r"\b[^\W\d_]{4,}")


def is_request(question: str) -> bool:
    """Return whether `question` asks (a question mark, an interrogative or request opening, scaffolding)
    rather than states or names a topic (a claim, keywords, a title: "Why Are You Wrong? ...", written
    in title case, is a title pasted in, not a question)."""
    words = _WORD.findall(question)
    if len(words) >= 3 and sum(w[0].isupper() for w in words) >= 0.7 * len(words):
        return False
    return "?" in question or bool(_ASKING.match(question)) or any(p.search(question) for p in SCAFFOLDING)


def rm3(
    terms: Mapping[str, float],
    texts: Sequence[str],
    scores: Sequence[float],
    *,
    n_terms: int,
    weight: float,
) -> dict[str, float]:
    """Return the BM25 query `terms` (stem -> weight) mixed with the feedback papers' terms.

    The query's weights are scaled to sum to 1 - `weight`; the `n_terms` stems most probable in the
    feedback `texts` (each text's term frequencies weighted by its share of `scores`) share `weight`.
    """
    total = sum(terms.values())
    if not total or not texts or not weight:
        return dict(terms)
    positive = [max(float(s), 0.0) for s in scores]
    shares = [s / sum(positive) for s in positive] if sum(positive) else [1 / len(texts)] * len(texts)
    model: dict[str, float] = {}
    for text, share in zip(texts, shares, strict=True):
        words = [w for w in keyword.stems(text) if not w.isdigit()]
        for stem, count in Counter(words).items():
            model[stem] = model.get(stem, 0.0) + share * count / len(words)
    chosen = sorted(model.items(), key=lambda item: -item[1])[:n_terms]
    mass = sum(p for _, p in chosen)
    mixed = {stem: (1 - weight) * w / total for stem, w in terms.items()}
    for stem, p in chosen:
        mixed[stem] = mixed.get(stem, 0.0) + weight * p / mass
    return mixed


def rocchio(vector: Sequence[float], vectors: Sequence[Sequence[float]], weight: float) -> list[float]:
    """Return the unit vector `(1 - weight) * vector + weight * centroid` (centroid of `vectors`, unit)."""
    query = np.asarray(vector, dtype=np.float32)
    if not len(vectors):
        return query.tolist()
    centroid = np.mean(np.asarray(vectors, dtype=np.float32), axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    moved = (1 - weight) * query / (np.linalg.norm(query) or 1.0) + weight * centroid
    return (moved / (np.linalg.norm(moved) or 1.0)).tolist()
