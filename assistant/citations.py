"""Citations: find `[arXiv:ID]` markers in an answer and keep only ids that were retrieved."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from assistant.sources.ids import normalize_id

# A marker `[arXiv:ID]`, `[arXiv:A, arXiv:B]`, `(arXiv:ID; ID2)`, or a bare `arXiv:ID` in running
# text, which claims a source too. One pass, so rewritten markers are never matched again.
_CITATION = re.compile(
    r"\s?(?:[\[(]\s*(arxiv:[^\[\]()]*?)\s*[\])]"
    r"|\barxiv:\s*([a-z\-.]+/\d{7}|\d{4}\.\d{4,5})(?:v\d+)?)",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"[,;]|\s+and\s+")


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
    parts = (p.strip() for p in _SEPARATOR.split(marker))
    return [normalize_id(p) for p in parts if p]


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

    cleaned = _CITATION.sub(lambda m: keep(_ids(m)), text)
    result.text = re.sub(r"[ \t]+([.,;:])", r"\1", cleaned).strip()
    return result
