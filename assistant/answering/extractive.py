"""The built-in answerer that needs no model: the question's best sentences, each cited."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.retrieve.sentences import Scored

# Another sentence joins the lead one only if it is at least this close to the question, relatively.
SUPPORT_RATIO = 0.75


def extractive_answer(scored: Sequence[Scored], *, min_score: float, max_sentences: int) -> list[str]:
    """Pick the relevant sentences most similar to the question, each ending with its `[arXiv:ID]`."""
    if not scored:
        return []
    # The best-ranked relevant paper speaks first; the other sentences go to whoever fits best.
    top = min(item.rank for item in scored)
    lead = max((item for item in scored if item.rank == top), key=lambda item: item.similarity)
    # Another sentence earns a place only if it is nearly as close to the question as the lead.
    floor = max(min_score, SUPPORT_RATIO * lead.similarity)
    others = sorted(
        (item for item in scored if item is not lead and item.similarity >= floor),
        key=lambda item: -item.similarity,
    )
    chosen = sorted([lead, *others[: max_sentences - 1]], key=lambda item: (item.rank, item.position))
    return [f"{item.sentence} [arXiv:{item.passage.arxiv_id}]" for item in chosen]
