"""One answer being made: its sentences checked as they stream (`Draft`), its timings and its `Answer`."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from llama_index.core.base.llms.types import ChatMessage

from assistant.answering.grammar import answer_grammar
from assistant.answering.stream import SentenceStream
from assistant.answering.support import check_support, closest_papers, recited
from assistant.answering.verify import RECITE_CANDIDATES, Verifier
from assistant.embeddings import TextEncoder
from assistant.llms import Backend, prompts
from assistant.llms.judge import JudgeError
from assistant.llms.prompts import NOT_FOUND
from assistant.retrieve.sentences import SentenceScores, sentences
from assistant.schema import Answer, Passage, Sentence
from assistant.sources.citations import parse_citations, verify

MIN_CLAIM_CHARS = 20
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


class Failure(Exception):
    """The answerer's reply cannot be used (said in one line, without control characters)."""


@dataclass
class Draft:
    """What one generation produced, sentence by sentence, each checked before it is shown."""

    retrieved: set[str]
    context_ids: list[str]  # the passages the model was shown, the only ids its grammar allows
    scores: SentenceScores
    embed_model: TextEncoder
    verifier: Verifier | None  # None: nobody judges entailment (the answer says so)
    question: str
    sentences: list[Sentence] = field(default_factory=list)  # shown
    unsupported: list[Sentence] = field(default_factory=list)  # withheld
    uncited: bool = False  # a sentence cited no retrieved paper
    proposed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    refused: bool = False  # the reply was, or contained, the refusal
    notes: list[str] = field(default_factory=list)  # for `Answer.warnings`
    recite: bool = True  # a sentence its sources do not support may move to another paper that does

    def add(self, raw: str) -> str | None:
        """Check one sentence of a model's reply; return the text to show, or None when nothing is shown."""
        if _is_refusal(raw):
            self.refused = True
            return None
        if repeats_instructions(raw):
            raise Failure(
                "it repeated its instructions instead of answering; an abstract may hold a prompt injection"
            )
        return self.keep(ids_to_markers(raw))

    def keep(self, draft: str) -> str | None:
        """Verify one sentence's citations, exact checks and entailment; return the text to show, or None."""
        self.proposed.extend(i for i in parse_citations(draft) if i not in self.proposed)
        checked = verify(draft, self.retrieved)
        self.dropped.extend(i for i in checked.dropped if i not in self.dropped)
        if not checked.text:
            return None
        sentence = self._checked(checked.text, checked.citations)
        if not sentence.supported:
            # A sentence whose every source was invented is not re-cited: the model made up where it
            # came from (a prompt injection asks for just that), so what it says is not taken up.
            invented = bool(checked.dropped) and not checked.citations
            fixed = None if invented or not self.recite else self._other_source(sentence)
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

    def _checked(self, text: str, citations: Sequence[str]) -> Sentence:
        """Run the exact checks, then (if they pass and someone judges) the entailment judgement."""
        sentence = check_support(text, citations, self.scores, self.embed_model, question=self.question)
        if not sentence.supported or self.verifier is None:
            return sentence
        try:
            return self.verifier.judged(sentence)
        except JudgeError as exc:  # no sentence may be shown as checked that was not
            raise Failure(str(exc)) from None

    def _other_source(self, sentence: Sentence) -> Sentence | None:
        """Return `sentence` cited to another retrieved paper the judge says entails it, if one does."""
        if self.verifier is None:
            return None
        skip = sentence.citations
        for arxiv_id in closest_papers(sentence.text, self.scores, self.embed_model, skip)[
            :RECITE_CANDIDATES
        ]:
            moved = self._checked(recited(sentence, arxiv_id), [arxiv_id])
            if moved.supported:
                return moved
        return None

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


def package_answer(
    question: str,
    text: str,
    passages: list[Passage],
    clock: Clock,
    who: str,
    judged_by: str,
    draft: Draft | None = None,
    warnings: Sequence[str] = (),
) -> Answer:
    """Return the `Answer` of `draft`'s checked sentences shown as `text`, written by `who`."""
    clock.mark("first_token_s")
    clock.mark("total_s")
    checked = draft.sentences if draft else []
    unchecked = [prompts.UNCHECKED] if checked and judged_by == "none" else []
    return Answer(
        question=question,
        text=text,
        citations=list(dict.fromkeys(i for s in checked for i in s.citations)),
        passages=passages,
        backend=who,
        dropped_citations=draft.dropped if draft else [],
        grounded=not (draft and draft.uncited) and not uncited_claims(text),
        # One line per kind and paper, however many sentences it concerns.
        warnings=list(dict.fromkeys([*(draft.notes if draft else []), *warnings, *unchecked])),
        sentences=checked,
        unsupported=draft.unsupported if draft else [],
        proposed_citations=draft.proposed if draft else [],
        timings=dict(clock.timings),
        verifier="extractive" if who == "extractive" else judged_by,
    )


def generate(
    backend: Backend,
    messages: list[ChatMessage],
    draft: Draft,
    clock: Clock,
    *,
    refusal: bool = True,
    grammar: str | None = None,
) -> Iterator[str]:
    """Stream one reply, yielding each sentence once it is complete and checked.

    A local model is held to the answer grammar (or `grammar`): cited sentences, or (with `refusal`)
    the refusal. Without `refusal` it also may not start the refusal's words as a sentence of its own.
    """
    local = backend.grammar_capable
    grammar = (grammar or answer_grammar(draft.context_ids, refusal=refusal)) if local else None
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
    except Failure:
        raise
    except Exception as exc:  # a remote service can fail in any way; that must not lose the answer
        if not backend.hosted:
            raise
        raise Failure(backend.describe_failure(exc)) from None
    finally:
        stream.close()
    if not reply.strip():
        raise Failure("it returned an empty answer")
