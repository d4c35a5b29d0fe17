"""Sentences of the retrieved passages scored against the question: split once, embedded once.

The rerank stage orders passages by their best sentence; the answer stage reads the same scores
to decide whether to answer, to pick the extractive answer and to check each generated sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.embeddings import TextEncoder
from assistant.schema import Passage

# Split after . ! ? (or a quotation they end: 'a good measure." In this study') when a capital, digit
# or bracket starts the next sentence; keeps "e.g. the".
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'\u201d]))\s+(?=[A-Z0-9(\[\"'])")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|et al|cf|vs|Fig|Eq|Sec|resp)\.$", re.IGNORECASE)
MIN_SENTENCE_CHARS = 20


def sentences(text: str) -> list[str]:
    """Split an abstract into sentences, rejoining splits after common abbreviations."""
    out: list[str] = []
    for piece in _SENTENCE_END.split(text.replace("\n", " ")):
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece.strip())
    return [s for s in out if s]


@dataclass(frozen=True)
class Scored:
    """One sentence of a retrieved passage and its cosine similarity to the question."""

    rank: int  # the passage's rank in retrieval
    position: int  # the sentence's place in the passage
    passage: Passage
    sentence: str
    similarity: float


@dataclass(frozen=True)
class SentenceScores:
    """Every sentence of the retrieved passages, embedded once, with its cosine to the question.

    The answer stage reads it three times (the relevance gate, the model's context, each answer
    sentence's support), so the passages' sentences are embedded once per question.
    """

    items: list[Scored]
    vectors: np.ndarray  # row i embeds items[i].sentence

    def best(self) -> dict[int, float]:
        """Return each passage rank's best sentence similarity."""
        best: dict[int, float] = {}
        for item in self.items:
            best[item.rank] = max(best.get(item.rank, -1.0), item.similarity)
        return best

    def relevant(self, min_score: float) -> list[Scored]:
        """Return the sentences of the passages whose best sentence reaches `min_score`.

        A passage counts as relevant by its best sentence, not by its whole-passage cosine: off-topic
        questions land near 0.2-0.4 either way, but only on-topic ones find a sentence that says it.
        """
        best = self.best()
        return [item for item in self.items if best[item.rank] >= min_score]

    def top(self) -> float:
        """Return the best similarity of any sentence (-1 when there are none)."""
        return max((item.similarity for item in self.items), default=-1.0)


def score_sentences(question: str, passages: Sequence[Passage], embed_model: TextEncoder) -> SentenceScores:
    """Embed the question and every sentence of `passages`, and score each sentence against it."""
    candidates = [
        (rank, position, p, sentence)
        for rank, p in enumerate(passages)
        for position, sentence in enumerate(sentences(p.text))
        if len(sentence) >= MIN_SENTENCE_CHARS
    ]
    if not candidates:
        return SentenceScores([], np.zeros((0, 1), dtype=np.float32))
    vectors = embed_model.embed([question] + [c[3] for c in candidates])
    scored = [Scored(*c, float(s)) for c, s in zip(candidates, vectors[1:] @ vectors[0], strict=True)]
    return SentenceScores(scored, vectors[1:])


def relevant_sentences(
    question: str, passages: Sequence[Passage], embed_model: TextEncoder, *, min_score: float
) -> list[Scored]:
    """Score each sentence against the question; keep the passages whose best sentence reaches `min_score`."""
    return score_sentences(question, passages, embed_model).relevant(min_score)
