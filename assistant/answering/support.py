"""Support per answer sentence: what it claims must be said by a passage it cites (bundled MiniLM)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from assistant.embeddings import TextEncoder
from assistant.retrieve.condense import key_terms
from assistant.retrieve.sentences import SentenceScores
from assistant.schema import Evidence, Sentence
from assistant.sources.citations import REPEATED_MARKER, without_citations

# A figure in an answer must be one its sources (or the question) state: small models invent them
# when pushed for a detail no abstract gives ("a batch size of 128"). An exact check: it stays beside
# the judge, which misses changed figures more often than anything else.
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# "The papers [arXiv:A] [arXiv:B]." claims nothing; "It is 45x cheaper [arXiv:A]." does.
MIN_CLAIM_WORDS = 3


def stems(text: str) -> set[str]:
    """Return the stems of `text`'s content words."""
    stemmer = _stemmer()
    return {stemmer.stemWord(word.lower()) for word in key_terms(text)}


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def blended(cosine: float, claim: str, cited: dict[str, str]) -> float:
    """Average the claim's cosine with the share of its content words that the cited passages contain.

    A short or paraphrased answer ("45x cheaper than crowdworkers") embeds far from the long sentence
    that says it (cosine 0.49) although every word of it is there; an invented claim misses words.
    """
    words = stems(claim)
    if not words:
        return cosine
    found = stems(" ".join(cited.values()))
    return (cosine + len(words & found) / len(words)) / 2


def check_support(
    text: str, citations: Sequence[str], scores: SentenceScores, embed_model: TextEncoder, *, question: str
) -> Sentence:
    """Check `text` against the passages it cites by exact tests, and find its evidence.

    The evidence is each cited paper's sentence closest to it (MiniLM cosine); `support` is the best
    cosine, or its blend with the claim's word overlap (`blended`) if higher: shown, not a gate.
    A sentence fails when it cites nothing retrieved, says nothing beyond its citation, or names a
    figure neither its sources nor the question state. Whether the cited abstract entails it is the
    judge's call (`answering.verify`).
    """
    claim = without_citations(text)
    rows = [i for i, item in enumerate(scores.items) if item.passage.arxiv_id in citations]
    if not rows:  # it cites nothing (or only passages too short to hold a sentence)
        return Sentence(text, list(citations), None, False, reason="it cites no retrieved paper")
    similarities = scores.vectors[rows] @ embed_model.embed([claim])[0]
    cited = {scores.items[r].passage.arxiv_id: scores.items[r].passage.text for r in rows}
    evidence: dict[str, Evidence] = {}
    for row, similarity in zip(rows, similarities, strict=True):
        item = scores.items[row]
        held = evidence.get(item.passage.arxiv_id)
        if held is None or similarity > held.similarity:
            evidence[item.passage.arxiv_id] = Evidence(
                item.passage.arxiv_id, item.sentence, round(float(similarity), 4)
            )
    cosine = float(np.max(similarities))
    support = round(max(cosine, blended(cosine, claim, cited)), 4)
    reason = exact_failure(claim, cited.values(), question)
    return Sentence(
        text=text,
        citations=list(citations),
        support=support,
        supported=reason is None,
        evidence=[evidence[i] for i in citations if i in evidence],
        reason=reason,
    )


def exact_failure(claim: str, cited: Iterable[str], question: str) -> str | None:
    """Say why `claim` (markers removed) fails an exact check against its cited texts, or None."""
    stated = set(_NUMBER.findall(" ".join([*cited, question])))
    invented = [n for n in _NUMBER.findall(claim) if n not in stated]
    if len(claim.split()) < MIN_CLAIM_WORDS:
        return "it says nothing beyond its citation"
    if invented:
        return f"its sources do not state {invented[0]}"
    return None


def closest_papers(
    claim: str, scores: SentenceScores, embed_model: TextEncoder, skip: Sequence[str]
) -> list[str]:
    """Return the retrieved papers not in `skip`, the one with the sentence closest to `claim` first."""
    similarities = scores.vectors @ embed_model.embed([without_citations(claim)])[0]
    best: dict[str, float] = {}
    for item, similarity in zip(scores.items, similarities, strict=True):
        if item.passage.arxiv_id not in skip:
            best[item.passage.arxiv_id] = max(best.get(item.passage.arxiv_id, -1.0), float(similarity))
    return sorted(best, key=lambda arxiv_id: -best[arxiv_id])


def recited(sentence: Sentence, arxiv_id: str) -> str:
    """Return `sentence`'s text citing `arxiv_id` instead of its own citations (or added, if none)."""
    text = sentence.text if sentence.citations else f"{sentence.text} [arXiv:{arxiv_id}]"
    for old in sentence.citations:
        text = text.replace(f"[arXiv:{old}]", f"[arXiv:{arxiv_id}]")
    return REPEATED_MARKER.sub(r"\1", text)  # its citations replaced by one paper's
