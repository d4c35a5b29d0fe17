"""arXiv id normalisation: one spelling per paper, whatever the source wrote."""

from __future__ import annotations

import re

# Every leading `arXiv:` or abs/pdf URL, not just the first: a model writes "[arXiv:arXiv:2305.14387]".
_PREFIXES = re.compile(r"(?:\s*(?:https?://(?:export\.)?arxiv\.org/(?:abs|pdf)/|arxiv:))*\s*", re.IGNORECASE)
# New-style ids (0704.0001, 2501.01234) and old-style ones (math/0601001, hep-th/9901001v3).
_ID = r"\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Za-z\-]+)?/\d{7}"
_VERSIONED = re.compile(rf"^({_ID})v\d+$", re.IGNORECASE)
_BARE = re.compile(_ID, re.IGNORECASE)


def normalize_id(raw: str) -> str:
    """Strip `arXiv:`/URL prefixes, `.pdf` and the version suffix; keep any other id as given."""
    # All prefixes and all `.pdf`s at once, so a normalised id normalises to itself: stored ids and
    # the ids users and answers give are each normalised once, then compared. Index arithmetic, not
    # a regex for the suffix: a long run of ".pdf" would make a right-anchored regex quadratic.
    start = prefixes.end() if (prefixes := _PREFIXES.match(raw)) else 0
    end = len(raw)
    while True:
        while end > start and raw[end - 1].isspace():
            end -= 1
        if end - start < 4 or raw[end - 4 : end].lower() != ".pdf":
            break
        end -= 4
    text = raw[start:end]
    match = _VERSIONED.match(text)
    return match.group(1) if match else text


def is_arxiv_id(text: str) -> bool:
    """Return whether `text` is a version-less arXiv id of either style, as `normalize_id` leaves one."""
    return bool(_BARE.fullmatch(text))
