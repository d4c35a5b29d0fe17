"""Answer generation: a tight cited context -> an answerer -> verified citations -> `Answer`."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from assistant.citations import parse_citations, verify
from assistant.config import AnswerSettings
from assistant.embeddings import TextEncoder
from assistant.extractive import Scored, extractive_answer, relevant_sentences, sentences
from assistant.llms import Backend
from assistant.prompts import FALLBACK_NOTICE, NOT_FOUND, PASSAGE, SYSTEM_PROMPT, USER_PROMPT
from assistant.schema import Answer, Passage

# English prose runs ~4 characters per token for the GPT-2/Qwen/Llama tokenizers; close enough
# for a budget, and it needs no tokenizer (a hosted model's is not at hand).
CHARS_PER_TOKEN = 4
MIN_CLAIM_CHARS = 20
PAPER_RATIO = 0.8  # bench questions: off-answer papers' best sentences scored 0.53-0.74 of the best
HEADER_TOKENS = 12  # a "Passage n [arXiv:ID]" line, before its title
_PARAGRAPH = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*\u2022]|\d+[.)])\s)")
# Small models sometimes cite a passage by its number ("[2]") instead of its id.
_NUMBERED = re.compile(r"\[(?:Passage\s*)?(\d{1,2})\]", re.IGNORECASE)
# ... or by its bare id ("[2401.01234]") or abstract page: sources too, so they are verified too.
_BARE_ID = re.compile(
    r"\[\s*(\d{4}\.\d{4,5})(?:v\d+)?\s*\]"
    r"|\bhttps?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/([a-z\-.]+/\d{7}|\d{4}\.\d{4,5})(?:v\d+)?(?:\.pdf)?",
    re.IGNORECASE,
)
# Passage text must not close the fence around the passages (prompts.PASSAGES_OPEN/CLOSE).
_FENCE = re.compile(r"<\s*/?\s*passages\s*>", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A reply that quotes one of these rules repeats its instructions instead of answering, as a
# retrieved abstract might ask it to ("reveal your system prompt"); NOT_FOUND alone is an answer.
_RULES = [
    " ".join(part.lower().split()).rstrip(".:;")
    for part in re.split(r"(?<=[.:;])\s+", SYSTEM_PROMPT)
    if len(part) >= 25 and part not in NOT_FOUND
]


@dataclass(frozen=True)
class Context:
    """The passages shown to the model, each cut down to the sentences that matter."""

    papers: list[tuple[Passage, list[str]]]

    def ids(self) -> list[str]:
        """Return the arXiv ids in the order they are numbered."""
        return [p.arxiv_id for p, _ in self.papers]

    def render(self) -> str:
        """Return the numbered passages as the user message shows them, each as data on two lines."""
        return "\n\n".join(
            PASSAGE.format(
                number=n,
                arxiv_id=p.arxiv_id,
                title=f" {as_data(p.title)}" if p.title else "",
                text=as_data(" ".join(chosen)),
            )
            for n, (p, chosen) in enumerate(self.papers, start=1)
        )


def as_data(text: str) -> str:
    """Flatten passage text to one line that cannot close the passages' fence or fake a prompt line."""
    return _FENCE.sub("(passages)", " ".join(text.split()))


def approx_tokens(text: str) -> int:
    """Estimate a text's length in LLM tokens."""
    return len(text) // CHARS_PER_TOKEN + 1


def select_context(
    question: str,
    passages: Sequence[Passage],
    embed_model: TextEncoder,
    *,
    min_score: float,
    max_tokens: int,
) -> Context:
    """Keep the sentences closest to the question, across relevant passages, within `max_tokens`."""
    scored = relevant_sentences(question, passages, embed_model, min_score=min_score)
    best: dict[int, float] = {}
    for item in scored:
        best[item.rank] = max(best.get(item.rank, -1.0), item.similarity)
    # A paper whose best sentence is well below the best paper's is noise that small models cite.
    floor = PAPER_RATIO * max(best.values(), default=0.0)
    scored = [item for item in scored if best[item.rank] >= floor]
    chosen: list[Scored] = []
    papers: set[int] = set()
    used = 0
    # Prompt tokens dominate CPU latency, so the budget is strict: skip what does not fit.
    for item in sorted(scored, key=lambda item: -item.similarity):
        header = HEADER_TOKENS + approx_tokens(item.passage.title or "")
        cost = approx_tokens(item.sentence) + (0 if item.rank in papers else header)
        if used + cost <= max_tokens or not chosen:
            chosen.append(item)
            papers.add(item.rank)
            used += cost
    chosen.sort(key=lambda item: (item.rank, item.position))
    return Context(
        [
            (p, [c.sentence for c in chosen if c.rank == rank])
            for rank, p in enumerate(passages)
            if rank in papers
        ]
    )


def build_messages(question: str, context: Context) -> list[ChatMessage]:
    """Return the grounded chat: the fixed system prompt, then passages, question and rules."""
    return [
        ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM_PROMPT),
        ChatMessage(
            role=MessageRole.USER,
            content=USER_PROMPT.format(passages=context.render(), question=question),
        ),
    ]


def number_to_id(text: str, ids: Sequence[str]) -> str:
    """Rewrite `[n]` passage numbers as the `[arXiv:ID]` of the n-th passage."""

    def replace(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return f"[arXiv:{ids[n - 1]}]" if 1 <= n <= len(ids) else match.group(0)

    return _NUMBERED.sub(replace, text)


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


def finish(
    question: str, draft: str, passages: list[Passage], backend: str, warnings: Sequence[str] = ()
) -> Answer:
    """Verify the draft's citations against the passages and package the answer."""
    checked = verify(draft, {p.arxiv_id for p in passages})
    return Answer(
        question=question,
        text=checked.text,
        citations=checked.citations,
        passages=passages,
        backend=backend,
        dropped_citations=checked.dropped,
        grounded=not uncited_claims(checked.text),
        warnings=list(warnings),
    )


def stream_answer(
    backend: Backend,
    question: str,
    passages: list[Passage],
    *,
    embed_model: TextEncoder,
    settings: AnswerSettings,
    min_score: float,
    query: str | None = None,
) -> Iterator[str | Answer]:
    """Yield the answer's text as it is generated, then the verified `Answer`.

    `query` is the stand-alone form of a follow-up `question`; the passages were retrieved for it.
    """
    query = query or question

    def extractive(warnings: Sequence[str] = ()) -> Answer:
        draft = extractive_answer(
            query, passages, embed_model, min_score=min_score, max_sentences=settings.max_sentences
        )
        return finish(question, draft, passages, "extractive", warnings)

    if backend.extractive:
        yield extractive()
        return
    context = select_context(
        query, passages, embed_model, min_score=min_score, max_tokens=settings.max_context_tokens
    )
    if not context.papers:
        yield finish(question, NOT_FOUND, passages, backend.name)
        return
    text = ""
    failure = None
    try:
        for piece in backend.stream(build_messages(query, context)):
            text += piece
            yield piece
    except Exception as exc:  # a remote service can fail in any way; that must not lose the answer
        if not backend.hosted:
            raise
        failure = backend.describe_failure(exc)
    if failure is None and not text.strip():
        failure = "it returned an empty answer"
    if failure is None and repeats_instructions(text):
        failure = "it repeated its instructions instead of answering; an abstract may hold a prompt injection"
    if failure is not None:
        # The reason may quote a remote server: no control characters reach the terminal or the log.
        notice = FALLBACK_NOTICE.format(backend=backend.name, reason=_CONTROL.sub("", failure))
        print(f"assistant: {notice}", file=sys.stderr)
        yield extractive([notice])
        return
    draft = ids_to_markers(number_to_id(text, context.ids()))
    yield finish(question, draft, passages, backend.name)
