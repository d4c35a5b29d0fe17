"""Follow-up questions -> stand-alone queries, with an LLM when there is one, else by rule."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.llms.prompts import CONDENSE_TEMPLATE
from assistant.sources.citations import parse_citations

# Words that point back into the conversation: a question using them is a follow-up.
_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|she|his|her|the (paper|method|"
    r"model|approach|authors?|work|study|dataset|benchmark|framework|algorithm))\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]+")
_STOP = frozenset(
    """a an and are as at be by can could did do does for from how in into is it its of on or paper
    papers should that the their them they this those to was were what when where which who why will
    with would about tell me more explain describe show give find found use used using""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Turn:
    """One earlier exchange: the question, the answer text and the ids it cited."""

    question: str
    answer: str = ""
    citations: tuple[str, ...] = field(default=())


def turns(history: Sequence[Any] | None) -> list[Turn]:
    """Normalise history: `Answer`s, `Turn`s, (question, answer) pairs or role/content messages."""
    out: list[Turn] = []
    pending: str | None = None
    for item in history or ():
        if isinstance(item, Turn):
            out.append(item)
        elif hasattr(item, "question") and hasattr(item, "citations"):
            out.append(Turn(item.question, item.text, tuple(item.citations)))
        elif isinstance(item, dict) and item.get("role") in ("user", "assistant"):
            content = item.get("content")
            text = content if isinstance(content, str) else ""
            if item["role"] == "user":
                pending = text
            elif pending is not None:
                out.append(Turn(pending, text, tuple(parse_citations(text))))
                pending = None
        elif isinstance(item, list | tuple) and len(item) == 2:
            question, reply = (str(x or "") for x in item)
            out.append(Turn(question, reply, tuple(parse_citations(reply))))
    return out


def key_terms(text: str) -> list[str]:
    """Return the content words of `text`, in order, without repeats."""
    words = [w for w in _WORD.findall(text) if w.lower() not in _STOP]
    return list(dict.fromkeys(words))


def is_follow_up(message: str) -> bool:
    """Whether `message` leans on the conversation (a pronoun, or too short to stand alone)."""
    return bool(_ANAPHORA.search(message)) or len(key_terms(message)) <= 1


def condense(message: str, history: Sequence[Any] | None, llm: Any = None) -> str:
    """Return a stand-alone search query for `message` given the conversation so far."""
    previous = turns(history)
    if not previous or not is_follow_up(message):
        return message
    if llm is not None:
        transcript = "\n".join(f"User: {t.question}\nAssistant: {t.answer}" for t in previous[-3:])
        prompt = CONDENSE_TEMPLATE.format(chat_history=transcript, question=message)
        try:
            rewritten = str(llm.complete(prompt)).strip()
        except Exception:  # a failing LLM must not break retrieval: fall back to the rule below
            rewritten = ""
        if rewritten:
            return rewritten
    # Rule: carry the last question's key terms, which name what "it" refers to.
    carried = [t for t in key_terms(previous[-1].question) if t.lower() not in message.lower()]
    return f"{message} {' '.join(carried)}".strip()


def cited_papers(history: Sequence[Any] | None, *, limit: int, recent: int = 3) -> list[str]:
    """Return the papers the conversation's last `recent` answers cited, newest answer first, at most `limit`.

    They stay candidates for a follow-up ("How was it evaluated?"), which is about them.
    """
    ids = [i for turn in reversed(turns(history)[-recent:]) for i in turn.citations]
    return list(dict.fromkeys(ids))[:limit]
