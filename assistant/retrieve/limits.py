"""The limits every entry point applies to a question and its search options; one clear line per broken one.

The CLI, the Python API (`Assistant`, `answer()`), the web page and `/chat` all reach the store through
`Assistant.stream` or `Assistant.retrieve`, which check here first; values from a JSON client may be of
any type, and text from argv or stdin may hold undecodable bytes (as lone surrogates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from assistant.config import MAX_TOP_K, Settings
from assistant.errors import InputError
from assistant.retrieve import RETRIEVERS, Filters

# Longest value of one filter (a category, a date, an author's name).
MAX_FILTER_CHARS = 200


@dataclass(frozen=True)
class Search:
    """A checked question with the search options to answer it with."""

    question: str
    top_k: int
    retriever: str
    filters: Filters


def check_search(
    settings: Settings, question: Any, *, top_k: Any = None, retriever: Any = None, filters: Any = None
) -> Search:
    """Return the question and options checked, the settings filling in what was not given."""
    return Search(
        check_question(question, settings.answer.max_question_chars),
        check_top_k(top_k, settings.retrieval.top_k),
        check_retriever(retriever, settings.retrieval.retriever),
        check_filters(filters),
    )


def check_question(question: Any, max_chars: int) -> str:
    """Return the question stripped, or raise `InputError` saying what is wrong with it."""
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty; ask something about the indexed abstracts")
    question = check_text(question, "the question")
    if len(question) > max_chars:
        raise InputError(
            f"the question is {len(question):,} characters long; the limit is {max_chars:,} "
            "(answer.max_question_chars): ask a shorter question"
        )
    return question


def check_text(value: str, what: str) -> str:
    """Return `value` stripped if every character can be encoded (tokenizers and Chroma need that)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{what} is not valid text: character {exc.start + 1} is an undecodable byte or a lone "
            "surrogate; send it as UTF-8"
        ) from None
    return value.strip()


def check_top_k(value: Any, default: int) -> int:
    """Return the number of papers to retrieve: a whole number from 1 to `MAX_TOP_K` (None: `default`)."""
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON clients and sliders send 5.0
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise InputError(f"top_k {value!r} is not allowed: give a whole number from 1 to {MAX_TOP_K}")
    return value


def check_retriever(value: Any, default: str) -> str:
    """Return a known retriever's name (None or empty: `default`)."""
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value not in RETRIEVERS:
        raise InputError(f"retriever {value!r} is unknown: use one of {', '.join(RETRIEVERS)}")
    return value


def check_filters(value: Any) -> Filters:
    """Return the filters as `Filters`: each value a bounded text (or a list of them), dates valid."""
    if isinstance(value, Filters):
        value = asdict(value)
    if value is not None and not isinstance(value, dict):
        raise InputError("filters must be a mapping of categories, since, until and author")
    for name, given in (value or {}).items():
        if given is None:
            continue
        for item in given if isinstance(given, list | tuple) else [given]:
            if not isinstance(item, str):
                raise InputError(f"filter {name} must be text, not {type(item).__name__}")
            if len(check_text(item, f"filter {name}")) > MAX_FILTER_CHARS:
                raise InputError(f"filter {name} is longer than {MAX_FILTER_CHARS} characters")
    return Filters.make(value)


def check_history(history: Any) -> Sequence[Any] | None:
    """Return the conversation so far if it is a list of earlier turns (or None)."""
    if history is not None and (isinstance(history, str) or not isinstance(history, Sequence)):
        raise InputError("history must be a list of earlier messages ({'role': ..., 'content': ...})")
    return history
