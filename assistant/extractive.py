"""The built-in answerer that needs no model: the question's best sentences, each cited."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from assistant.embeddings import MiniLMEmbedding
from assistant.prompts import NOT_FOUND
from assistant.schema import Passage

# Split after . ! ? when a capital, digit or bracket starts the next sentence; keeps "e.g. the".
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|et al|cf|vs|Fig|Eq|Sec|resp)\.$", re.IGNORECASE)
MIN_SENTENCE_CHARS = 20
SUPPORT_RATIO = 0.75


def sentences(text: str) -> list[str]:
    """Split an abstract into sentences, rejoining splits after common abbreviations."""
    out: list[str] = []
    for piece in _SENTENCE_END.split(text.replace("\n", " ")):
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece.strip())
    return [s for s in out if s]


def extractive_answer(
    question: str,
    passages: Sequence[Passage],
    embed_model: MiniLMEmbedding,
    *,
    min_score: float,
    max_sentences: int,
) -> str:
    """Compose an answer from the sentences most similar to the question, each with its `[arXiv:ID]`."""
    relevant = [p for p in passages if p.score >= min_score]
    if not relevant:
        return NOT_FOUND
    candidates = [
        (rank, position, p.arxiv_id, sentence)
        for rank, p in enumerate(relevant)
        for position, sentence in enumerate(sentences(p.text))
        if len(sentence) >= MIN_SENTENCE_CHARS
    ]
    if not candidates:
        return NOT_FOUND
    vectors = embed_model.embed([question] + [c[3] for c in candidates])
    similarity = vectors[1:] @ vectors[0]
    # The top paper always speaks first; the rest of the sentences go to whoever fits best.
    best_of_top = max((i for i, c in enumerate(candidates) if c[0] == 0), key=lambda i: similarity[i])
    # Another sentence earns a place only if it is nearly as close to the question as the lead.
    floor = max(min_score, SUPPORT_RATIO * float(similarity[best_of_top]))
    others = [i for i in np.argsort(-similarity) if i != best_of_top and similarity[i] >= floor]
    chosen = sorted([best_of_top, *others[: max_sentences - 1]], key=lambda i: candidates[i][:2])
    return " ".join(f"{candidates[i][3]} [arXiv:{candidates[i][2]}]" for i in chosen)
