"""Support per answer sentence: how close it comes to a sentence of a passage it cites (bundled MiniLM)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assistant.citations import without_citations
from assistant.embeddings import MiniLMEmbedding
from assistant.extractive import SentenceScores
from assistant.schema import Evidence, Sentence


def check_support(
    text: str,
    citations: Sequence[str],
    scores: SentenceScores,
    embed_model: MiniLMEmbedding,
    *,
    min_support: float,
) -> Sentence:
    """Score `text` against the sentences of the passages it cites; below `min_support` it is unsupported.

    The evidence is each cited paper's closest sentence; the support is the best of them.
    """
    rows = [i for i, item in enumerate(scores.items) if item.passage.arxiv_id in citations]
    if not rows:  # it cites nothing (or only passages too short to hold a sentence): nothing supports it
        return Sentence(text=text, citations=list(citations), support=None, supported=False)
    claim = embed_model.embed([without_citations(text)])[0]
    similarities = scores.vectors[rows] @ claim
    evidence: dict[str, Evidence] = {}
    for row, similarity in zip(rows, similarities, strict=True):
        item = scores.items[row]
        held = evidence.get(item.passage.arxiv_id)
        if held is None or similarity > held.similarity:
            evidence[item.passage.arxiv_id] = Evidence(
                item.passage.arxiv_id, item.sentence, round(float(similarity), 4)
            )
    support = round(float(np.max(similarities)), 4)
    return Sentence(
        text=text,
        citations=list(citations),
        support=support,
        supported=support >= min_support,
        evidence=[evidence[i] for i in citations if i in evidence],
    )
