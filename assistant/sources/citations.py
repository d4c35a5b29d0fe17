"""Citations: find `[arXiv:ID]` markers in an answer and keep only ids that were retrieved."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from assistant.sources.ids import normalize_id

# A marker `[arXiv:ID]`, `[arXiv:A, arXiv:B]`, `(arXiv:ID; ID2)`, or a bare `arXiv:ID` in running
# text, which claims a source too. The marker's inside is matched greedily up to its bracket and
# stripped later: a lazy match followed by `\s*` took quadratic time on a run of spaces.
_CITATION = re.compile(
    r"\s?(?:[\[(]\s*(arxiv:[^\[\]()]*)[\])]"
    r"|\barxiv:\s*([a-z\-.]+/\d{7}|\d{4}\.\d{4,5})(?:v\d+)?)",
    re.IGNORECASE,
)
# The same marker again right after itself ("cheaper [arXiv:A] [arXiv:A] [arXiv:A]."): shown once.
REPEATED_MARKER = re.compile(r"(\[arXiv:[^\]]+\])(?:\s*\1)+")
# The look-behinds start a match only at the first of a run of spaces (else quadratic on long runs).
_SEPARATOR = re.compile(r"[,;]|(?<!\s)\s+and\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"(?<![ \t])[ \t]+([.,;:])")


@dataclass
class Verified:
    """An answer text with unverifiable citations removed, and what was kept and dropped."""

    text: str
    citations: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _ids(match: re.Match[str]) -> list[str]:
    marker, bare = match.groups()
    if bare:
        return [normalize_id(bare)]
    return [arxiv_id for part in _SEPARATOR.split(marker) if (arxiv_id := normalize_id(part))]


def parse_citations(text: str) -> list[str]:
    """Return the normalised ids cited in `text`, in order of first appearance."""
    found = [i for match in _CITATION.finditer(text) for i in _ids(match)]
    return list(dict.fromkeys(found))


def verify(text: str, retrieved: Collection[str]) -> Verified:
    """Keep citations to `retrieved` ids (rewritten as `[arXiv:ID]`); drop and record the rest."""
    allowed = set(retrieved)
    result = Verified(text="")

    def keep(ids: list[str]) -> str:
        good = []
        for arxiv_id in ids:
            if arxiv_id in allowed:
                good.append(arxiv_id)
                if arxiv_id not in result.citations:
                    result.citations.append(arxiv_id)
            elif arxiv_id not in result.dropped:
                result.dropped.append(arxiv_id)
        return (" " + " ".join(f"[arXiv:{i}]" for i in good)) if good else ""

    # Until nothing changes: removing a marker, or a space before punctuation, can join the text
    # around it into a new citation ("arXiv:9999.9[arXiv:1111.11111]9999"), which must be checked too.
    # A pass after the first changes the text only by dropping such markers, so it gets shorter.
    cleaned, previous = text, None
    while cleaned != previous:
        previous = cleaned
        cleaned = _CITATION.sub(lambda m: keep(_ids(m)), cleaned)
        cleaned = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", cleaned).strip()
    result.text = REPEATED_MARKER.sub(r"\1", cleaned)
    return result


def without_citations(text: str) -> str:
    """Return `text` with every citation marker removed (what a sentence claims, for comparing meaning)."""
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _CITATION.sub("", text)).strip()
