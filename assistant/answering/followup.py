"""Follow-ups: the papers the conversation cited answer the next turn when they hold its answer.

"How was it evaluated?" after an answer about AdaScale is about AdaScale: its whole abstract (from the
store, by id) is asked first. A judge, when there is one, decides whether those abstracts answer it
(its `answerable`, as for any question); without one, the relevance threshold does. When they do
not, the question goes to a fresh retrieval as before, and only that may end in the refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistant.answering.context import HEADER_TOKENS, Context, approx_tokens
from assistant.config import AnswerSettings
from assistant.embeddings import TextEncoder
from assistant.errors import AssistantError
from assistant.llms.judge import Judge, JudgeError
from assistant.retrieve.sentences import Scored, SentenceScores, score_sentences
from assistant.schema import Passage

# A follow-up's words say little ("How was it evaluated?" is closest, by MiniLM, to AdaScale's sentence on
# its overhead and farthest from the one naming its tasks), so the judge and the model read the
# conversation's papers whole, best paper first, in their own order, within this many times the usual
# passage budget (the local budget is 200 tokens; a bundled abstract 250-400).
FOLLOW_UP_BUDGET = 2.0
# Every sentence of a paper the judge said answers: the relevance threshold is not applied again.
ALL_RELEVANT = -1.0


@dataclass(frozen=True)
class Known:
    """The conversation's papers as the answer's passages, and how it was decided that they answer."""

    passages: list[Passage]
    scores: SentenceScores
    answerable: float | None  # the judge's probability; None when the relevance threshold decided
    min_score: float  # the relevance threshold the answer applies to these passages
    context: Context  # what the judge read and the model is shown: the papers whole, within a budget


def from_conversation(
    query: str,
    ids: Sequence[str],
    passage: Callable[[str], Passage],
    embed_model: TextEncoder,
    *,
    judge: Judge | None,
    settings: AnswerSettings,
    min_score: float,
    local: bool,
) -> Known | None:
    """Return the conversation's papers `ids` as passages if they answer `query` (stand-alone), else None.

    `passage` returns a stored paper's whole abstract as a passage; a paper deleted since is skipped;
    `local`: the answerer runs on this machine (its passage budget is small).
    A judge that cannot run leaves the decision to a fresh retrieval (which says why it fell back).
    """
    found: list[Passage] = []
    for arxiv_id in ids:
        try:
            found.append(passage(arxiv_id))
        except AssistantError:
            continue
    if not found:
        return None
    vectors = embed_model.embed([query, *(p.text for p in found)])
    similarity = {p.arxiv_id: float(v @ vectors[0]) for p, v in zip(found, vectors[1:], strict=True)}
    passages = sorted(
        (Passage(p.arxiv_id, p.title, round(similarity[p.arxiv_id], 4), p.text, p.metadata) for p in found),
        key=lambda p: -p.score,
    )
    scores = score_sentences(query, passages, embed_model)
    context = whole_papers(
        scores.items, passages, round(FOLLOW_UP_BUDGET * settings.context_tokens(local=local))
    )
    if judge is None:
        return Known(passages, scores, None, min_score, context) if scores.relevant(min_score) else None
    try:
        p = judge.answerable(query, context.render())
    except JudgeError:
        return None
    if p < settings.min_answerable:
        return None
    return Known(passages, scores, p, ALL_RELEVANT, context)


def whole_papers(items: Sequence[Scored], passages: Sequence[Passage], budget: int) -> Context:
    """Return the papers' sentences in their own order, best paper first, within `budget` tokens."""
    chosen: list[Scored] = []
    used = 0
    for item in sorted(items, key=lambda item: (item.rank, item.position)):
        header = (
            0
            if any(c.rank == item.rank for c in chosen)
            else HEADER_TOKENS + approx_tokens(item.passage.title or "")
        )
        cost = approx_tokens(item.sentence) + header
        if used + cost <= budget or not chosen:
            chosen.append(item)
            used += cost
    return Context(
        [
            (p, [c.sentence for c in chosen if c.rank == rank])
            for rank, p in enumerate(passages)
            if any(c.rank == rank for c in chosen)
        ]
    )
