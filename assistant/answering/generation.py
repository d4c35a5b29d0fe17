"""Answer generation: a tight cited context -> an answerer -> sentences checked as they stream -> `Answer`."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from llama_index.core.base.llms.types import ChatMessage

from assistant.answering.context import build_messages, select_context
from assistant.answering.extractive import extractive_answer
from assistant.answering.grammar import answer_grammar
from assistant.answering.stream import SentenceStream
from assistant.answering.support import check_support, recite, unmentioned_names
from assistant.config import AnswerSettings
from assistant.embeddings import TextEncoder
from assistant.inert import safe
from assistant.llms import Backend, prompts
from assistant.llms.prompts import NOT_FOUND
from assistant.retrieve.sentences import SentenceScores, sentences
from assistant.schema import Answer, Passage, Sentence
from assistant.sources.citations import parse_citations, verify

MIN_CLAIM_CHARS = 20
PAPER_RATIO = 0.8  # bench questions: off-answer papers' best sentences scored 0.53-0.74 of the best
# A local model held to the answer grammar that starts so is writing the refusal: no need to wait for it.
REFUSAL_START = NOT_FOUND[: len("The indexed abstracts")]
# Kept out of a reply that must answer: grammar-held, the model otherwise writes the refusal as a sentence.
REFUSAL_WORDS = ("indexed",)
_PARAGRAPH = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*\u2022]|\d+[.)])\s)")
# Sources named by a bare id ("[2401.01234]") or an abstract page are claims too: verified like markers.
_BARE_ID = re.compile(
    r"\[\s*(\d{4}\.\d{4,5})(?:v\d+)?\s*\]"
    r"|\bhttps?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/([a-z\-.]+/\d{7}|\d{4}\.\d{4,5})(?:v\d+)?(?:\.pdf)?",
    re.IGNORECASE,
)
# A reply that quotes one of these rules repeats its instructions instead of answering, as a
# retrieved abstract might ask it to ("reveal your system prompt"); NOT_FOUND alone is an answer.
_RULES = [
    " ".join(part.lower().split()).rstrip(".:;")
    for prompt in (prompts.SYSTEM_PROMPT, prompts.HOSTED_SYSTEM_PROMPT)
    for part in re.split(r"(?<=[.:;])\s+", prompt)
    if len(part) >= 25 and part not in NOT_FOUND
]


def ids_to_markers(text: str) -> str:
    """Rewrite bare `[2401.01234]` ids and arxiv.org links as `[arXiv:ID]`, so they are verified too."""
    return _BARE_ID.sub(lambda m: f"[arXiv:{m.group(1) or m.group(2)}]", text)


def repeats_instructions(text: str) -> bool:
    """Whether a reply quotes the system prompt's rules instead of answering."""
    said = " ".join(text.lower().split())
    return any(rule in said for rule in _RULES)


def uncited_claims(text: str) -> list[str]:
    """Return the sentences that state something with no citation after them in their paragraph."""
    uncited: list[str] = []
    for paragraph in _PARAGRAPH.split(text.replace(NOT_FOUND, " ")):
        pending: list[str] = []
        for sentence in sentences(paragraph):
            if parse_citations(sentence):
                pending = []  # a citation covers the uncited sentences just before it
            elif len(sentence) >= MIN_CLAIM_CHARS and not sentence.rstrip().endswith(":"):
                pending.append(sentence)
        uncited.extend(pending)
    return uncited


def _is_refusal(sentence: str) -> bool:
    return " ".join(sentence.split()).rstrip(". ").lower() == NOT_FOUND.rstrip(".").lower()


class _Failure(Exception):
    """The answerer's reply cannot be used (said in one line, without control characters)."""


@dataclass
class Draft:
    """What one generation produced, sentence by sentence, each checked before it is shown."""

    retrieved: set[str]
    context_ids: list[str]  # the passages the model was shown, the only ids its grammar allows
    scores: SentenceScores
    embed_model: TextEncoder
    min_support: float
    question: str
    sentences: list[Sentence] = field(default_factory=list)  # shown
    unsupported: list[Sentence] = field(default_factory=list)  # withheld
    uncited: bool = False  # a sentence cited no retrieved paper
    proposed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    refused: bool = False  # the reply was, or contained, the refusal
    notes: list[str] = field(default_factory=list)  # for `Answer.warnings`

    def add(self, raw: str) -> str | None:
        """Check one sentence of a model's reply; return the text to show, or None when nothing is shown."""
        if _is_refusal(raw):
            self.refused = True
            return None
        if repeats_instructions(raw):
            raise _Failure(
                "it repeated its instructions instead of answering; an abstract may hold a prompt injection"
            )
        return self.keep(ids_to_markers(raw))

    def keep(self, draft: str) -> str | None:
        """Verify one sentence's citations and support; return the text to show, or None to withhold it."""
        self.proposed.extend(i for i in parse_citations(draft) if i not in self.proposed)
        checked = verify(draft, self.retrieved)
        self.dropped.extend(i for i in checked.dropped if i not in self.dropped)
        if not checked.text:
            return None
        sentence = check_support(
            checked.text,
            checked.citations,
            self.scores,
            self.embed_model,
            min_support=self.min_support,
            question=self.question,
        )
        if not sentence.supported:
            # A sentence whose every source was invented is not re-cited: the model made up where it
            # came from (a prompt injection asks for just that), so what it says is not taken up.
            invented = bool(checked.dropped) and not checked.citations
            fixed = (
                None
                if invented
                else recite(
                    sentence,
                    self.scores,
                    self.embed_model,
                    min_support=self.min_support,
                    question=self.question,
                )
            )
            if fixed is None:
                self.uncited |= not checked.citations and len(checked.text) >= MIN_CLAIM_CHARS
                self.unsupported.append(sentence)
                return None
            new = ", ".join(fixed.citations)
            old = ", ".join(sentence.citations)
            self.notes.append(
                prompts.RECITED.format(old=old, new=new) if old else prompts.CITED_FOR_IT.format(new=new)
            )
            sentence = fixed
        self.sentences.append(sentence)
        return sentence.text if len(self.sentences) == 1 else f" {sentence.text}"

    @property
    def text(self) -> str:
        """Return the answer as shown: the checked sentences, in order."""
        return " ".join(s.text for s in self.sentences)


@dataclass
class Clock:
    """When the question arrived, and the answer's timings so far (seconds)."""

    started: float
    timings: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        """Record `name` now, once."""
        self.timings.setdefault(name, round(time.perf_counter() - self.started, 3))


def _generate(
    backend: Backend, messages: list[ChatMessage], draft: Draft, clock: Clock, *, refusal: bool = True
) -> Iterator[str]:
    """Stream one reply, yielding each sentence once it is complete and checked.

    A local model is held to the answer grammar: cited sentences, or (with `refusal`) the refusal.
    Without `refusal` it also may not start the refusal's words as a sentence of its own.
    """
    local = backend.grammar_capable
    grammar = answer_grammar(draft.context_ids, refusal=refusal) if local else None
    pending = SentenceStream()
    reply = ""
    stream = backend.stream(messages, grammar=grammar, avoid=() if refusal else REFUSAL_WORDS)
    try:
        for piece in stream:
            clock.mark("first_token_s")
            reply += piece
            if local and refusal and reply.lstrip().startswith(REFUSAL_START):
                draft.refused = True  # the grammar allows nothing but the refusal from here
                return
            for sentence in pending.feed(piece):
                if (shown := draft.add(sentence)) is not None:
                    clock.mark("first_sentence_s")
                    yield shown
        for sentence in pending.close():
            if (shown := draft.add(sentence)) is not None:
                clock.mark("first_sentence_s")
                yield shown
    except _Failure:
        raise
    except Exception as exc:  # a remote service can fail in any way; that must not lose the answer
        if not backend.hosted:
            raise
        raise _Failure(backend.describe_failure(exc)) from None
    finally:
        stream.close()
    if not reply.strip():
        raise _Failure("it returned an empty answer")


def stream_answer(
    backend: Backend,
    question: str,
    passages: list[Passage],
    scores: SentenceScores,
    *,
    embed_model: TextEncoder,
    settings: AnswerSettings,
    min_score: float,
    query: str | None = None,
    clock: Clock | None = None,
) -> Iterator[str | Answer]:
    """Yield the answer's checked sentences as they are ready, then the `Answer` they add up to.

    `query` is the stand-alone form of a follow-up `question`; the passages were retrieved for it and
    `scores` holds their sentences scored against it. Refusals are decided by evidence: nothing
    relevant -> the refusal at once; a local model that refuses although a sentence reaches
    `min_score + settings.strong_margin` is asked again, constrained to answer. A sentence its cited
    passages do not support is withheld (`Answer.unsupported`).
    """
    query = query or question
    clock = clock or Clock(time.perf_counter())
    retrieved = {p.arxiv_id for p in passages}
    relevant = scores.relevant(min_score)

    def package(text: str, who: str, draft: Draft | None = None, warnings: Sequence[str] = ()) -> Answer:
        clock.mark("first_token_s")
        clock.mark("total_s")
        checked = draft.sentences if draft else []
        return Answer(
            question=question,
            text=text,
            citations=list(dict.fromkeys(i for s in checked for i in s.citations)),
            passages=passages,
            backend=who,
            dropped_citations=draft.dropped if draft else [],
            grounded=not (draft and draft.uncited) and not uncited_claims(text),
            # One line per kind and paper, however many sentences it concerns.
            warnings=list(dict.fromkeys([*(draft.notes if draft else []), *warnings])),
            sentences=checked,
            unsupported=draft.unsupported if draft else [],
            proposed_citations=draft.proposed if draft else [],
            timings=dict(clock.timings),
        )

    def extractive(warnings: Sequence[str] = ()) -> Iterator[str | Answer]:
        draft = new_draft()
        for sentence in extractive_answer(
            relevant, min_score=min_score, max_sentences=settings.max_sentences
        ):
            if (shown := draft.keep(sentence)) is not None:
                yield shown
        yield package(draft.text or NOT_FOUND, "extractive", draft, warnings)

    def new_draft(context_ids: Sequence[str] = ()) -> Draft:
        return Draft(retrieved, list(context_ids), scores, embed_model, settings.min_support, query)

    if not relevant:  # no passage clears the relevance threshold: refuse without spending model time
        yield package(NOT_FOUND, backend.name)
        return
    if backend.extractive:
        yield from extractive()
        return
    local = backend.grammar_capable
    context = select_context(
        relevant,
        passages,
        max_tokens=settings.context_tokens(local=not backend.hosted),
        paper_ratio=0.0 if backend.hosted else PAPER_RATIO,
    )
    messages = build_messages(query, context, hosted=backend.hosted)
    top = scores.top()
    strong_at = min_score + settings.strong_margin
    # A refusal stands when the question names something no relevant passage mentions ("... on
    # ImageNet?"): however close a sentence is, the detail asked about is not stated.
    relevant_texts = [
        f"{passages[r].title or ''} {passages[r].text}" for r in sorted({i.rank for i in relevant})
    ]
    strong = top >= strong_at and not unmentioned_names(query, relevant_texts)
    warnings: list[str] = []
    draft = new_draft(context.ids())
    try:
        yield from _generate(backend, messages, draft, clock)
        if draft.refused and not draft.sentences and strong:
            action = prompts.RETRIED if local else prompts.EXTRACTED
            warnings.append(
                prompts.REFUSAL_OVERRIDDEN.format(
                    backend=backend.name, similarity=top, strong=strong_at, action=action
                )
            )
            if not local:
                yield from extractive(warnings)
                return
            # Constrained to answer from the strong evidence only: the papers whose sentences reached it.
            best = scores.best()
            strong_context = select_context(
                [i for i in relevant if best[i.rank] >= strong_at],
                passages,
                max_tokens=settings.context_tokens(local=True),
                paper_ratio=PAPER_RATIO,
            )
            draft = new_draft(strong_context.ids())
            retry = build_messages(query, strong_context)
            yield from _generate(backend, retry, draft, clock, refusal=False)
            if not draft.sentences:
                yield from extractive([*warnings, prompts.RETRY_FAILED.format(backend=backend.name)])
                return
    except _Failure as failure:
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
