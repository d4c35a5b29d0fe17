"""Answer generation: a tight cited context -> an answerer -> sentences checked as they stream -> `Answer`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence

from assistant.answering.context import Context, build_messages, select_context
from assistant.answering.draft import (  # noqa: F401 (ids_to_markers, ...: their home before draft.py)
    Clock,
    Draft,
    Failure,
    generate,
    ids_to_markers,
    package_answer,
    repeats_instructions,
    uncited_claims,
)
from assistant.answering.extractive import extractive_answer
from assistant.answering.verify import Verifier, abstracts
from assistant.config import AnswerSettings
from assistant.embeddings import TextEncoder
from assistant.inert import safe
from assistant.llms import Backend, prompts
from assistant.llms.judge import Judge, JudgeError
from assistant.llms.prompts import NOT_FOUND
from assistant.retrieve.sentences import Scored, SentenceScores
from assistant.schema import Answer, Passage

# Sentences (closest to the question first) the judge reads to say whether the passages answer it.
ANSWERABLE_SENTENCES = 4
PAPER_RATIO = 0.8  # bench questions: off-answer papers' best sentences scored 0.53-0.74 of the best


def stream_answer(
    backend: Backend,
    question: str,
    passages: list[Passage],
    scores: SentenceScores,
    *,
    embed_model: TextEncoder,
    settings: AnswerSettings,
    min_score: float,
    judge: Judge | None = None,
    abstract: Callable[[str], str] | None = None,
    query: str | None = None,
    clock: Clock | None = None,
    answerable: float | None = None,
    context: Context | None = None,
) -> Iterator[str | Answer]:
    """Yield the answer's checked sentences as they are ready, then the `Answer` they add up to.

    `query` is the stand-alone form of a follow-up `question`; the passages were retrieved for it and
    `scores` holds their sentences scored against it; `abstract` returns a paper's whole abstract.
    Nothing relevant (MiniLM cosine, a cheap first cut) -> the refusal at once. With a `judge`: the
    model is asked only when the judge says the best passages answer the question, a local model's
    refusal then is retried constrained to answer, and each sentence is shown only when the judge
    says the abstract it cites entails it. Without one, strong evidence (`min_score +
    settings.strong_margin`) decides the retry, sentences pass the exact checks only, and the answer
    says they were not judged. `answerable` is the judge's verdict on these passages, when already asked;
    `context`, what the model is shown, when chosen already.
    """
    query = query or question
    clock = clock or Clock(time.perf_counter())
    retrieved = {p.arxiv_id for p in passages}
    relevant = scores.relevant(min_score)
    verifier = (
        Verifier(
            judge,
            settings.min_entailment,
            settings.judge_sentences,
            abstracts(passages, abstract),
        )
        if judge is not None
        else None
    )
    judged_by = "extractive" if backend.extractive else judge.name if judge else "none"

    def package(text: str, who: str, draft: Draft | None = None, warnings: Sequence[str] = ()) -> Answer:
        return package_answer(question, text, passages, clock, who, judged_by, draft, warnings)

    def extractive(warnings: Sequence[str] = ()) -> Iterator[str | Answer]:
        draft = Draft(retrieved, [], scores, embed_model, None, query)  # verbatim sentences: no judge
        for sentence in extractive_answer(
            relevant, min_score=min_score, max_sentences=settings.max_sentences
        ):
            if (shown := draft.keep(sentence)) is not None:
                yield shown
        yield package(draft.text or NOT_FOUND, "extractive", draft, warnings)

    def new_draft(context_ids: Sequence[str] = ()) -> Draft:
        return Draft(retrieved, list(context_ids), scores, embed_model, verifier, query)

    if not relevant:  # no passage clears the relevance threshold: refuse without spending model time
        yield package(NOT_FOUND, backend.name)
        return
    if backend.extractive:
        yield from extractive()
        return
    local = backend.grammar_capable
    chosen = context
    context = chosen or select_context(
        relevant,
        passages,
        max_tokens=settings.context_tokens(local=not backend.hosted),
        paper_ratio=0.0 if backend.hosted else PAPER_RATIO,
    )
    top = scores.top()
    strong_at = min_score + settings.strong_margin
    strong = top >= strong_at
    if judge is not None:
        try:
            if answerable is None:
                answerable = judge.answerable(query, answerable_evidence(relevant))
        except JudgeError as exc:
            notice = prompts.FALLBACK_NOTICE.format(backend=judge.name, reason=safe(str(exc), one_line=True))
            print(f"assistant: {notice}", file=sys.stderr)  # as when the answerer fails
            yield from extractive([notice])
            return
        clock.mark("answerable_s")
        if answerable < settings.min_answerable:
            yield package(
                NOT_FOUND,
                backend.name,
                warnings=[
                    prompts.NOT_ANSWERABLE.format(
                        judge=judge.name, p=answerable, least=settings.min_answerable
                    )
                ],
            )
            return
        strong = True  # the judge found the answer in the passages: a refusal is not accepted
    messages = build_messages(query, context, hosted=backend.hosted)
    warnings: list[str] = []
    draft = new_draft(context.ids())
    try:
        yield from generate(backend, messages, draft, clock)
        if draft.refused and not draft.sentences and strong:
            action = prompts.RETRIED if local else prompts.EXTRACTED
            why = (
                prompts.JUDGED_ANSWERABLE.format(judge=judge.name, p=answerable)
                if judge is not None
                else prompts.CLOSE_SENTENCE.format(similarity=top, strong=strong_at)
            )
            warnings.append(prompts.REFUSAL_OVERRIDDEN.format(backend=backend.name, why=why, action=action))
            if not local:
                yield from extractive(warnings)
                return
            # Constrained to answer from the strong evidence only: the papers whose sentences reached it.
            best = scores.best()
            floor = min(strong_at, max(best.values(), default=0.0))
            strong_context = chosen or select_context(
                [i for i in relevant if best[i.rank] >= floor],
                passages,
                max_tokens=settings.context_tokens(local=True),
                paper_ratio=PAPER_RATIO,
            )
            draft = new_draft(strong_context.ids())
            retry = build_messages(query, strong_context)
            yield from generate(backend, retry, draft, clock, refusal=False)
            if not draft.sentences:
                yield from extractive([*warnings, prompts.RETRY_FAILED.format(backend=backend.name)])
                return
    except Failure as failure:
        # The reason may quote a remote server: no control characters reach the terminal or the log.
        reason = safe(str(failure), one_line=True)
        if draft.sentences:  # what was shown stays true: keep it, say why it ends there
            warnings.append(prompts.STOPPED.format(backend=backend.name, reason=reason))
            yield package(draft.text, backend.name, draft, warnings)
            return
        notice = prompts.FALLBACK_NOTICE.format(backend=backend.name, reason=reason)
        print(f"assistant: {notice}", file=sys.stderr)
        yield from extractive([*warnings, notice])
        return
    if draft.sentences and draft.refused:
        warnings.append(prompts.CONTRADICTION.format(backend=backend.name))
    if not draft.sentences:
        yield package(NOT_FOUND, backend.name, draft, warnings)
        return
    yield package(draft.text, backend.name, draft, warnings)


def answerable_evidence(relevant: Sequence[Scored], count: int = ANSWERABLE_SENTENCES) -> str:
    """Return the `count` sentences closest to the question, labelled by paper, for the judge."""
    best = sorted(relevant, key=lambda item: -item.similarity)[:count]
    return " ".join(f"[{item.passage.arxiv_id}] {item.sentence}" for item in best)
