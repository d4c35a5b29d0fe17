"""arXiv id normalisation: one spelling per paper, whatever the source wrote."""

from __future__ import annotations

import re

_PREFIX = re.compile(r"^(?:https?://(?:export\.)?arxiv\.org/(?:abs|pdf)/|arxiv:)", re.IGNORECASE)
# New-style ids (0704.0001, 2501.01234) and old-style ones (math/0601001, hep-th/9901001v3).
_VERSIONED = re.compile(r"^(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Za-z\-]+)?/\d{7})v\d+$", re.IGNORECASE)


def normalize_id(raw: str) -> str:
    """Strip `arXiv:`/URL prefixes, `.pdf` and the version suffix; keep any other id as given."""
    text = raw.strip()
    text = _PREFIX.sub("", text)
    if text.lower().endswith(".pdf"):
        text = text[:-4]
    match = _VERSIONED.match(text)
    return match.group(1) if match else text
