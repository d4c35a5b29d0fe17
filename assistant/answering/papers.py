"""Answers about several papers: an overview (one cited line per relevant paper, best first) and a
comparison (one line per side), then at most one sentence relating them.

A paper's line says what it contributes or finds: its sentence closest to the question among those
from its first "we ..." sentence on (what comes before is background: "LLMs such as ChatGPT have seen
widespread adoption ..."). `extractive` lines are the abstract's own sentences (no judge needed);
`model` lines are written by the model, one per paper in order (a grammar holds a local model to it),
each shown only when the judge says its paper entails it, else replaced by the extractive line.
The relating sentence is the model's, cites two papers or more and is judged like any other.
Lines are separated by a newline: the web chat shows them as a list, `Answer.sentences` carries each
line's paper.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from assistant.answering.context import Context
from assistant.answering.draft import Clock, Draft, Failure, generate, package_answer
from assistant.answering.grammar import papers_grammar
from assistant.answering.verify import Verifier, abstracts
from assistant.config import AnswerSettings
from assistant.embeddings import TextEncoder
from assistant.inert import safe
from assistant.llms import Backend, prompts
from assistant.llms.judge import Judge, JudgeError
from assistant.llms.prompts import NOT_FOUND
from assistant.retrieve.sentences import Scored, SentenceScores
from assistant.schema import Answer, Passage

# A sentence that says what the paper itself does; the sentences before the first one are background.
# ("our understanding" of a field is not yet the paper's own work.)
_OWN = re.compile(
    r"\b(?:we|us|our(?! (?:understanding|knowledge))|this (?:paper|work|study|article|note)|the proposed)\b"
    r"|\b(?:is|are) (?:proposed|introduced|presented)\b",
    re.IGNORECASE,
)
# A paper joins an overview when its best sentence is at least this share of the best paper's: the
# share the answer stage keeps for the model's context (on the dev overviews, 0.75 let in a third
# more off-topic papers and no more right ones).
OVERVIEW_RATIO = 0.8
# Each paper's sentences the relating sentence is written from (its line first).
RELATE_SENTENCES = 2
LINE = "\n"


def findings(scores: SentenceScores, rank: int) -> list[Scored]:
    """Return paper `rank`'s sentences from its first that says what the paper does (else all of them)."""
    items = sorted((i for i in scores.items if i.rank == rank), key=lambda item: item.position)
    start = next((i.position for i in items if _OWN.search(i.sentence)), 0)
    return [i for i in items if i.position >= start] or items


def paper_line(scores: SentenceScores, rank: int) -> Scored:
    """Return the finding of paper `rank` closest to the question."""
    return max(findings(scores, rank), key=lambda item: item.similarity)


def paper_evidence(scores: SentenceScores, line: Scored) -> str:
    """Return what the judge reads to say whether a paper answers: its line and next closest finding."""
    others = sorted((i for i in findings(scores, line.rank) if i is not line), key=lambda i: -i.similarity)
    chosen = sorted([line, *others[: RELATE_SENTENCES - 1]], key=lambda item: item.position)
    return f"[{line.passage.arxiv_id}] " + " ".join(i.sentence for i in chosen)


def overview_papers(scores: SentenceScores, min_score: float, max_papers: int) -> list[int]:
    """Return the ranks of the relevant papers, in retrieval order, at most `max_papers`."""
    best = scores.best()
    top = max(best.values(), default=-1.0)
    floor = max(min_score, OVERVIEW_RATIO * top)
    return [rank for rank in sorted(best) if best[rank] >= floor][:max_papers]


def stream_papers(
    backend: Backend,
    question: str,
    passages: list[Passage],
    scores: SentenceScores,
    ranks: Sequence[int],
    *,
    kind: str,
    embed_model: TextEncoder,
    settings: AnswerSettings,
    judge: Judge | None = None,
    abstract: Callable[[str], str] | None = None,
    query: str | None = None,
    clock: Clock | None = None,
    form: str = "extractive",
) -> Iterator[str | Answer]:
    """Yield a checked line per paper of `ranks` (best first), a sentence relating them, then the `Answer`.

    `kind` is `overview` or `comparison`. With a judge, an overview keeps only the papers whose line
    it says answers the question; no line left -> the refusal.
    """
    query = query or question
    clock = clock or Clock(time.perf_counter())
    retrieved = {p.arxiv_id for p in passages}
    verifier = (
        Verifier(judge, settings.min_entailment, settings.judge_sentences, abstracts(passages, abstract))
        if judge is not None
        else None
    )
    generative = not backend.extractive
    warnings: list[str] = []
    lines = [paper_line(scores, rank) for rank in ranks]
    judged = judge is not None and kind == "overview"

    def on_topic(item: Scored) -> bool:
        """Whether the judge (if it chooses the papers) says this line answers the question."""
        nonlocal judged
        if not judged or judge is None:
            return True
        try:
            p = judge.answerable(query, paper_evidence(scores, item))
        except JudgeError as exc:
            judged = False
            reason = safe(str(exc), one_line=True)
            warnings.append(prompts.PAPERS_UNJUDGED.format(judge=judge.name, reason=reason))
            return True
        clock.mark("answerable_s")
        return p >= settings.min_answerable

    if form == "model" and generative:  # the model writes every line at once: choose them first
        lines = [item for item in lines if on_topic(item)]
    ids = [i.passage.arxiv_id for i in lines]
    draft = Draft(retrieved, ids, scores, embed_model, verifier, query)
    model_wrote = False

    def show(text: str) -> str:
        clock.mark("first_sentence_s")
        return text if len(draft.sentences) == 1 else f"{LINE}{text.strip()}"

    def extracted(item: Scored) -> Iterator[str]:
        if form != "model" and not on_topic(item):
            return
        draft.verifier = None  # the abstract's own sentence: nothing to judge
        if draft.keep(f"{item.sentence} [arXiv:{item.passage.arxiv_id}]") is not None:
            yield show(draft.sentences[-1].text)
        draft.verifier = verifier

    done = 0  # lines shown or given up, in paper order
    if form == "model" and generative and lines:
        try:
            for _ in generate(
                backend,
                papers_messages(query, lines, scores, kind=kind, relate=False),
                draft,
                clock,
                refusal=False,
                grammar=papers_grammar(ids),
            ):
                sentence = draft.sentences.pop()
                at = ids.index(sentence.citations[0], done) if sentence.citations[0] in ids[done:] else -1
                if at < 0:  # a paper whose line is shown already: not shown twice
                    continue
                for item in lines[done:at]:  # the model's lines for these were withheld
                    yield from extracted(item)
                draft.sentences.append(sentence)
                model_wrote = True
                yield show(sentence.text)
                done = at + 1
        except Failure as failure:
            warnings.append(
                prompts.STOPPED.format(backend=backend.name, reason=safe(str(failure), one_line=True))
            )
    for item in lines[done:]:
        yield from extracted(item)
    cited = {s.citations[0] for s in draft.sentences}
    if generative and len(cited) >= 2:
        lines = [item for item in lines if item.passage.arxiv_id in cited]
        ids = [item.passage.arxiv_id for item in lines]
        before = len(draft.sentences)
        draft.recite = False  # a sentence relating papers is not moved to one of them
        try:
            for _ in generate(
                backend,
                papers_messages(query, lines, scores, kind=kind, relate=True),
                draft,
                clock,
                refusal=False,
                grammar=papers_grammar(ids, related=True),
            ):
                related = draft.sentences[-1]
                if len(set(related.citations)) < 2:  # its markers collapsed into one paper's
                    draft.sentences.pop()
                    reason = "it cites fewer than two of the papers"
                    draft.unsupported.append(replace(related, supported=False, reason=reason))
                    break
                model_wrote = True
                yield show(related.text)
                break  # one sentence relates them
            if len(draft.sentences) == before:
                reason = (draft.unsupported[-1].reason if draft.unsupported else None) or "it wrote none"
                warnings.append(prompts.NOT_RELATED.format(backend=backend.name, reason=reason))
        except Failure as failure:
            reason = safe(str(failure), one_line=True)
            warnings.append(prompts.NOT_RELATED.format(backend=backend.name, reason=reason))
    if not draft.sentences and judged:
        warnings.append(prompts.PAPERS_NONE.format(judge=judge.name if judge else ""))
    who = backend.name if model_wrote else "extractive"
    judged_by = (judge.name if judge else "none") if model_wrote else "extractive"
    text = LINE.join(s.text for s in draft.sentences) or NOT_FOUND
    yield package_answer(question, text, passages, clock, who, judged_by, draft, warnings)


def papers_messages(
    query: str, lines: Sequence[Scored], scores: SentenceScores, *, kind: str, relate: bool
) -> list[ChatMessage]:
    """Return the chat for writing the papers' lines (or the sentence relating them): the fixed
    system prompt, then each paper's line and its next closest finding."""
    papers = []
    for line in lines:
        others = sorted(
            (i for i in findings(scores, line.rank) if i is not line), key=lambda item: -item.similarity
        )[: RELATE_SENTENCES - 1]
        chosen = sorted([line, *others], key=lambda item: item.position)
        papers.append((line.passage, [i.sentence for i in chosen]))
    template = prompts.RELATE_USER_PROMPT if relate else prompts.PAPERS_USER_PROMPT
    user = template.format(
        passages=Context(papers).render(), question=query, relation=prompts.RELATIONS[kind]
    )
    return [
        ChatMessage(role=MessageRole.SYSTEM, content=prompts.SYSTEM_PROMPT),
        ChatMessage(role=MessageRole.USER, content=user),
    ]
